/* weft version numbers. */
#ifndef WEFT_VERSION_H
#define WEFT_VERSION_H

#include "weft/export.h"

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

WEFT_BEGIN_DECLS

/* What it does: returns the library's version as "MAJOR.MINOR.PATCH".
 * Ownership: a static string; never free it.
 * Errors: none.
 * Checkpoint: no.
 * Threads: any thread. */
WEFT_EXTERN const char *weft_version_string(void);

WEFT_END_DECLS

#endif
