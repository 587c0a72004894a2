/* services/assets.h — the dashboard's files embedded in the binary, as the
 * HTTP server serves them (services/api.c; docs/monitoring.md).
 *
 * pc__dashboard_assets[] is generated at build time by the dashboard's
 * build (services/dashboard/: index.html, app.js, style.css and Debian's
 * chart.js as C arrays; the CMake variable PICOS_DASHBOARD_ASSETS_C names
 * the file), or, without it, a minimal table (services/CMakeLists.txt).
 * It ends with an entry whose path is NULL. `path` is the URL path the
 * file is served at ("/", "/assets/app.js"), `type` its Content-Type.
 * Read-only; any thread.
 */
#ifndef PICOS_SERVICES_ASSETS_H
#define PICOS_SERVICES_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
} pc__asset;

extern const pc__asset pc__dashboard_assets[];

#endif
