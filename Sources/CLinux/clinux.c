#include "clinux.h"
#ifdef __linux__
#include <signal.h>
#include <sys/prctl.h>
int rnnlm_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL); }
#else
int rnnlm_die_with_parent(void) { return 0; }
#endif
