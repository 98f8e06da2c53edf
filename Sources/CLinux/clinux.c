#define _GNU_SOURCE  // memfd_create, F_ADD_SEALS
#include "clinux.h"
#ifdef __linux__
#include <signal.h>
#include <sys/prctl.h>
int rnnlm_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL); }
#else
int rnnlm_die_with_parent(void) { return 0; }
#endif

#include <signal.h>
void rnnlm_unblock_stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, 0);
}

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static volatile sig_atomic_t stop_signal = 0;
static char *interrupt_note = NULL;
static size_t interrupt_note_length = 0;

static void on_stop_signal(int sig) {
    if (sig == SIGINT && stop_signal != 0) _exit(130);  // the second Ctrl-C: the user will not wait
    if (stop_signal == 0) {
        stop_signal = sig;
        if (sig == SIGINT && interrupt_note) {
            ssize_t ignored = write(STDERR_FILENO, interrupt_note, interrupt_note_length);
            (void)ignored;
        }
    }
}

void rnnlm_install_stop_handlers(int usr1, const char *first_interrupt_note) {
    if (first_interrupt_note && !interrupt_note) {
        interrupt_note = strdup(first_interrupt_note);
        interrupt_note_length = interrupt_note ? strlen(interrupt_note) : 0;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, 0);
    sigaction(SIGTERM, &action, 0);
    if (usr1) {
        sigaction(SIGUSR1, &action, 0);
    } else {
        signal(SIGUSR1, SIG_IGN);
    }
    rnnlm_unblock_stop_signals();
}

int rnnlm_stop_signal(void) { return stop_signal; }

#if defined(__GLIBC__)
#include <malloc.h>
void rnnlm_keep_large_buffers(void) {
    // Every step allocates and frees megabyte-sized message buffers. With glibc's defaults these are mmap'ed
    // (or the heap top is trimmed after they are freed), so each step's fresh buffers page-fault and are zeroed
    // by the kernel again: measured 0.5 ms of a 9 ms worker step for a 0.9 MB gradient. Serve them from the
    // heap and keep freed memory for reuse instead (peak RSS grows by about one step's buffers).
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
}
#else
void rnnlm_keep_large_buffers(void) {}
#endif

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
void *rnnlm_map_shared(const char *path, uint64_t bytes, int create) {
    int fd = create == 1 ? open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                         : open(path, (create == 2 ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if ((create == 1 && ftruncate(fd, (off_t)bytes) != 0) || fstat(fd, &st) != 0) { int e = errno; close(fd); errno = e; return NULL; }
    if ((uint64_t)st.st_size < bytes) { close(fd); errno = EINVAL; return NULL; }
    void *p = mmap(NULL, bytes, create == 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    errno = e;
    return p == MAP_FAILED ? NULL : p;
}
#ifdef __linux__
void *rnnlm_map_sealed(const char *name, uint64_t bytes, int *fd_out) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return NULL;
    // Sized once, then sealed: no process (whoever opens /proc/PID/fd/FD) can shrink the file under a mapping,
    // which would turn the mapping's next read into SIGBUS.
    if (ftruncate(fd, (off_t)bytes) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int e = errno; close(fd); errno = e; return NULL;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { int e = errno; close(fd); errno = e; return NULL; }
    *fd_out = fd;
    return p;
}
#else
void *rnnlm_map_sealed(const char *name, uint64_t bytes, int *fd_out) { (void)name; (void)bytes; (void)fd_out; errno = ENOSYS; return NULL; }
#endif
void rnnlm_unmap_shared(void *base, uint64_t bytes) { if (base) munmap(base, bytes); }
void rnnlm_seq_begin_write(uint64_t *p, uint64_t odd) {
    __atomic_store_n(p, odd, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // the payload writes stay after the odd counter
}
void rnnlm_seq_end_write(uint64_t *p, uint64_t even) { __atomic_store_n(p, even, __ATOMIC_RELEASE); }
uint64_t rnnlm_seq_begin_read(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
uint64_t rnnlm_seq_end_read(const uint64_t *p) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);  // the payload reads stay before the second counter read
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#include <stdlib.h>
void rnnlm_reexec_without_blas_pool(char **argv) {
#ifdef __linux__
    if (getenv("OPENBLAS_NUM_THREADS") != NULL) return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0) return;
    // By the file's own path, so the process keeps its name (exec of /proc/self/exe names it "exe", which pgrep,
    // pkill and ps -C rnnlm then miss); /proc/self/exe when the file is gone (replaced while running).
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) { path[n] = '\0'; execv(path, argv); }
    execv("/proc/self/exe", argv);
    // exec failed: carry on with the pool (correct, only a little slower).
#else
    (void)argv;
#endif
}
