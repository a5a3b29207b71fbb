/* legacy.h -- nothing to import: the 0.1 entry points live in legacy.c alone. */
#ifndef GPTE_LEGACY_H
#define GPTE_LEGACY_H
#endif
