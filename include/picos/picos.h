/* picos/picos.h — the umbrella header: everything public in picos. */
#ifndef PICOS_PICOS_H
#define PICOS_PICOS_H

#include "picos/actor.h"
#include "picos/chan.h"
#include "picos/compute.h"
#include "picos/err.h"
#include "picos/file.h"
#include "picos/hotswap.h"
#include "picos/log.h"
#include "picos/monitor.h"
#include "picos/msg.h"
#include "picos/node.h"
#include "picos/pool.h"
#include "picos/proc.h"
#include "picos/ref.h"
#include "picos/rps.h"
#include "picos/sock.h"
#include "picos/supervisor.h"
#include "picos/sync.h"
#include "picos/task.h"
#include "picos/tls.h"
#include "picos/transport.h"

#define PICOS_VERSION_MAJOR 0
#define PICOS_VERSION_MINOR 1
#define PICOS_VERSION_PATCH 0
#define PICOS_VERSION "0.1.0"

#endif
