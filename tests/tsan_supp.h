/* tests/tsan_supp.h — TSan suppressions every test program shares (one
 * definition per program: testutil.h and net_peer.c include this). */
#ifndef PICOS_TESTS_TSAN_SUPP_H
#define PICOS_TESTS_TSAN_SUPP_H
#if defined(__SANITIZE_THREAD__)
/* libzmq is not built with TSan: the lock-free queues that hand a message
 * from its I/O thread to ours are invisible, so the bytes they carry look
 * raced (reports with libzmq.so frames only, e.g. zmq_recv's memcpy of a
 * buffer its I/O thread filled). Our own code is still checked. */
const char *__tsan_default_suppressions(void);
const char *
__tsan_default_suppressions(void)
{
    return "race:libzmq.so\n"
           "race:libsodium.so\n" /* CURVE decrypts in libzmq's I/O thread */
           /* and the memcpy with which its I/O thread fills a message's
            * buffer is not to count as a write: a reader of that buffer
            * (our protobuf-c decode) has no libzmq frame to match above
            * (test_net stalled_peer_not_spun's frames of 3,000 bytes) */
           "called_from_lib:libzmq.so\n"
           "called_from_lib:libsodium.so\n";
}
#endif
#endif
