#ifndef RNNLM_CLINUX_H
#define RNNLM_CLINUX_H
/// Asks the kernel to SIGKILL this process when its parent exits (Linux; a no-op elsewhere).
/// Returns 0 on success. A C wrapper because prctl is variadic and Swift cannot call it.
int rnnlm_die_with_parent(void);
#endif
