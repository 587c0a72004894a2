/* services/assets.h — the files the registry's HTTP server serves as they
 * are (docs/monitoring.md, the dashboard): services/dashboard/'s
 * index.html, app.js and style.css and Debian's Chart.js, embedded at build
 * time by cmake/picosEmbed.cmake into the generated dashboard_assets.c.
 * Nothing is read from disk at run time, and no other path exists.
 */
#ifndef PICOS_SERVICES_ASSETS_H
#define PICOS_SERVICES_ASSETS_H

#include <stddef.h>

/* One embedded file: its URL path ("/", "/assets/app.js", ...), its
 * Content-Type, and its bytes (len of them; a NUL follows, not counted). */
typedef struct pc__asset {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
} pc__asset;

/* The dashboard's files: "/", "/assets/app.js", "/assets/style.css",
 * "/assets/chart.js", then an entry with a NULL path. Read-only. */
extern const pc__asset pc__dashboard_assets[];

#endif
