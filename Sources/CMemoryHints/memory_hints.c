/* memory_hints.h is header-only (static inline); SwiftPM wants one source per C target. */
#include "memory_hints.h"
