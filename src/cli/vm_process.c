#include "cli/vm_process.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

int vm_process_open(const struct vm_runtime *rt, struct vm_process *p)
{
    p->pid = rt->pid;
    p->pidfd = (int)syscall(SYS_pidfd_open, rt->pid, 0);
    if (p->pidfd < 0)
        return -errno;
    /* Checked after opening: from here on the pidfd pins this very process. */
    if (!vm_runtime_alive(rt)) {
        vm_process_close(p);
        return -ESRCH;
    }
    return 0;
}

void vm_process_close(struct vm_process *p)
{
    if (p->pidfd >= 0)
        close(p->pidfd);
    p->pidfd = -1;
}

int vm_process_signal(const struct vm_process *p, int sig)
{
    return syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

bool vm_process_wait(const struct vm_process *p, int timeout_ms)
{
    /* A pidfd polls readable once its process has exited (Linux 5.3). */
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
    uint64_t deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000ULL;
    for (;;) {
        uint64_t now = monotonic_ns();
        int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ULL);
        int n = poll(&pfd, 1, left);
        if (n > 0)
            return true;
        if (n == 0 || (n < 0 && errno != EINTR))
            return false;
    }
}
