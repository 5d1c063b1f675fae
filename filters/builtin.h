/* builtin.h — the filters built into the gateway, registered by main.c at start. */
#ifndef PC_FILTERS_BUILTIN_H
#define PC_FILTERS_BUILTIN_H

/* Registers every built-in filter (idempotent: a name already registered is skipped). */
void pc_filters_register_builtin(void);

#endif
