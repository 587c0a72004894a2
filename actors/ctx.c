/* actors/ctx.c — the context switch under every task.
 *
 * A context is just a saved stack pointer. Switching stores the running
 * stack pointer in `from`, loads the one in `to` and continues wherever
 * `to` last switched away — or, for a fresh context, in its entry function.
 * That is the whole cost of a switch: a handful of instructions and no
 * system call (ucontext's swapcontext does a sigprocmask syscall per
 * switch).
 *
 * On x86-64 (System V) the switch is inline asm (internal.h): it pushes
 * rbp and its resume address, and declares every other register clobbered,
 * so the registers the caller needs are saved once, by the caller's own
 * prologue, not a second time by the switch. aarch64 (AAPCS64) has a
 * hand-written switch function that saves the callee-saved registers;
 * anything else, or a build with -DPICOS_CONTEXT=ucontext, uses the
 * portable makecontext/swapcontext fallback.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#if !defined(PC__CTX_UCONTEXT) && defined(__x86_64__)

/* Frame on a suspended stack, from the saved sp upward: the resume
 * address, rbp (pc__ctx_switch in internal.h). A fresh context's frame is
 * its entry function instead, which the switch jumps to with the stack as
 * a call leaves it (a fake return address above). The MXCSR and x87
 * control words are not switched (ldmxcsr/fldcw cost more than the rest of
 * the switch): all tasks of a worker share the thread's floating-point
 * modes, so a task must not change them across a blocking call. The
 * aarch64 switch likewise leaves FPCR alone. */
void
pc__ctx_make(pc__ctx *c, void *stack, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;

    *--sp = 0;                          /* entry's fake return address */
    *--sp = (uint64_t)(uintptr_t)entry; /* the switch jumps there */
    c->sp = sp;
}

#elif !defined(PC__CTX_UCONTEXT) && defined(__aarch64__)

/* Frame: x19..x30 (x29 fp, x30 lr) at sp+0..95, d8..d15 at sp+96..159. */
__asm__(".text\n"
        ".globl pc__ctx_switch\n"
        ".type pc__ctx_switch,%function\n"
        ".p2align 4\n"
        "pc__ctx_switch:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mov x2, sp\n"
        "    str x2, [x0]\n"
        "    ldr x2, [x1]\n"
        "    mov sp, x2\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size pc__ctx_switch, .-pc__ctx_switch\n"
        ".section .note.GNU-stack,\"\",%progbits\n"
        ".text\n");

void
pc__ctx_make(pc__ctx *c, void *stack, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 176);

    memset(sp, 0, 176);
    sp[11] = (uint64_t)(uintptr_t)entry; /* x30: ret goes there */
    c->sp = sp;
}

#else /* portable fallback */

void
pc__ctx_make(pc__ctx *c, void *stack, size_t size, void (*entry)(void))
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, entry, 0);
    c->sp = (char *)stack + size; /* approximate: used for small-mode copy */
}

void
pc__ctx_switch(pc__ctx *from, pc__ctx *to)
{
    char here;
    from->sp = &here; /* approximate sp, good enough for the small-mode copy */
    swapcontext(&from->uc, &to->uc);
}

#endif
