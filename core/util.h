/* util.h — small helpers every layer may use (a leaf: includes only the
 * C library). */
#ifndef MREG_UTIL_H
#define MREG_UTIL_H

/* A parameter a function must take (a callback's signature, a handler
 * of a table) but does not need: -Wunused-parameter is on, and this says
 * the omission is meant. */
#define UNUSED __attribute__((unused))

#endif
