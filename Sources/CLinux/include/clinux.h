#ifndef RNNLM_CLINUX_H
#define RNNLM_CLINUX_H
/// Asks the kernel to SIGKILL this process when its parent exits (Linux; a no-op elsewhere).
/// Returns 0 on success. A C wrapper because prctl is variadic and Swift cannot call it.
int rnnlm_die_with_parent(void);
#endif

/// Unblocks SIGINT, SIGTERM and SIGUSR1 in this thread's signal mask. A process inherits its spawner's mask, and
/// some launchers (test runners, supervisors) spawn with them blocked, which would make Ctrl-C and
/// SIGTERM pend forever instead of reaching rnnlm's handlers.
void rnnlm_unblock_stop_signals(void);

/// Installs the stop handlers of a command-line run. The first SIGINT or SIGTERM (and SIGUSR1 when `usr1` != 0)
/// is recorded for `rnnlm_stop_signal`; the run stops at its next step boundary. A SIGINT arriving after any of
/// them exits at once with status 130 (`_exit`, no checkpoint). With `usr1` == 0, SIGUSR1 is ignored (a worker: the
/// coordinator checkpoints and stops it). `first_interrupt_note`, when not NULL, is written to stderr on the first
/// SIGINT (copied). Unblocks the signals, as `rnnlm_unblock_stop_signals` does.
void rnnlm_install_stop_handlers(int usr1, const char *first_interrupt_note);
/// The first stop signal received since `rnnlm_install_stop_handlers` (SIGINT, SIGTERM, SIGUSR1), or 0.
int rnnlm_stop_signal(void);

/// Makes glibc's malloc serve and keep large (up to 32 MB) buffers on the heap instead of mmap'ing and
/// unmapping them per allocation (a no-op on other C libraries). Call once at startup.
void rnnlm_keep_large_buffers(void);

#include <stdint.h>
/// Maps the file at `path` shared: `create` 1 creates it (mode 0600, sized to `bytes`) read-write; 0 opens it
/// read-write and 2 read-only, requiring it to be at least `bytes` long. Returns NULL with errno set on failure.
void *rnnlm_map_shared(const char *path, uint64_t bytes, int create);
/// Creates an anonymous shared-memory file (memfd) of `bytes`, sealed against shrinking and growing, and maps it
/// read-write. Returns NULL with errno set on failure; on success stores the file's descriptor in `*fd_out`, which the
/// caller keeps open while the file is in use (others open the file as /proc/PID/fd/FD) and then closes.
void *rnnlm_map_sealed(const char *name, uint64_t bytes, int *fd_out);
/// Unmaps what rnnlm_map_shared or rnnlm_map_sealed returned.
void rnnlm_unmap_shared(void *base, uint64_t bytes);
/// A seqlock on a shared-memory slot's counter: the writer stores an odd value before writing the payload and
/// the next even value after; a reader that sees the same even value before and after its copy got it whole.
void rnnlm_seq_begin_write(uint64_t *p, uint64_t odd);
void rnnlm_seq_end_write(uint64_t *p, uint64_t even);
uint64_t rnnlm_seq_begin_read(const uint64_t *p);
uint64_t rnnlm_seq_end_read(const uint64_t *p);

/// rnnlm parallelises by itself (`--threads`, workers) and runs OpenBLAS single-threaded, but OpenBLAS starts its
/// thread pool when the library loads, and an idle pool thread spins on sched_yield beside the compute
/// threads. Unless OPENBLAS_NUM_THREADS is already set, this sets it to 1 and re-executes the program (same
/// pid, arguments and environment otherwise) so the pool is never created. Returns only if it did nothing.
void rnnlm_reexec_without_blas_pool(char **argv);
