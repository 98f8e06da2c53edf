#ifndef RNNLM_CLINUX_H
#define RNNLM_CLINUX_H
/// Asks the kernel to SIGKILL this process when its parent exits (Linux; a no-op elsewhere).
/// Returns 0 on success. A C wrapper because prctl is variadic and Swift cannot call it.
int rnnlm_die_with_parent(void);
#endif

/// Unblocks SIGINT and SIGTERM in this thread's signal mask. A process inherits its spawner's mask, and
/// some launchers (test runners, supervisors) spawn with them blocked, which would make Ctrl-C and
/// SIGTERM pend forever instead of reaching rnnlm's handlers.
void rnnlm_unblock_stop_signals(void);

/// Makes glibc's malloc serve and keep large (up to 32 MB) buffers on the heap instead of mmap'ing and
/// unmapping them per allocation (a no-op on other C libraries). Call once at startup.
void rnnlm_keep_large_buffers(void);
