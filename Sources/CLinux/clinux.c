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
    sigprocmask(SIG_UNBLOCK, &set, 0);
}
