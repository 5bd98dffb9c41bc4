/* Guest threads (tests/tests/kernel_threads.rs): pthreads doing file I/O, identity
 * checks, a mutex+condvar handoff, joins, a shared descriptor table and cwd, a
 * pthread_kill to one thread, a CLONE_VM process, (mode "exitgroup") exit_group
 * from a thread while others block, and (mode "leaderexit") a process whose leader
 * leaves with pthread_exit before its last thread. It prints no pid or tid, only what must be the same
 * under any Linux: the lines are compared with linux.uml's. Mode "sleep" leaves a
 * threaded process behind for the kill -9 check. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 8

static pid_t pid;
static pid_t tids[N];
static int same_pid[N];
static int io_ok[N];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int turn;
static char order[64];
static int shared_fd;

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static void *worker(void *arg) {
    int i = (int)(long)arg;
    tids[i] = gettid_();
    same_pid[i] = getpid() == pid;
    char name[64], buf[64], back[64];
    snprintf(name, sizeof name, "/tmp/thr.%d", i);
    int len = snprintf(buf, sizeof buf, "thread %d wrote this\n", i);
    int fd = open(name, O_CREAT | O_TRUNC | O_RDWR, 0644);
    int ok = fd >= 0 && write(fd, buf, len) == len;
    ok = ok && lseek(fd, 0, SEEK_SET) == 0 && read(fd, back, sizeof back) == len;
    ok = ok && memcmp(buf, back, len) == 0;
    if (fd >= 0) close(fd);
    /* The descriptor main opened is in every thread's table. */
    char rec[16];
    snprintf(rec, sizeof rec, "rec %d        \n", i);
    ok = ok && pwrite(shared_fd, rec, 15, i * 15) == 15;
    io_ok[i] = ok;
    pthread_mutex_lock(&lock);
    while (turn != i) pthread_cond_wait(&cond, &lock);
    char d[4];
    snprintf(d, sizeof d, "%d ", i);
    strcat(order, d);
    turn++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return (void *)(long)(i * i + 1);
}

static volatile pid_t handled_by;
static volatile int handled;
static void on_usr1(int sig) {
    (void)sig;
    handled_by = gettid_();
    handled = 1;
}
static volatile pid_t target_tid;
static void *waiter(void *arg) {
    (void)arg;
    target_tid = gettid_();
    while (!handled) usleep(1000);
    return NULL;
}

static int opened_fd = -1;
static void *opener(void *arg) {
    (void)arg;
    int fd = open("/tmp/thr.opened", O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd >= 0 && write(fd, "opened by a thread\n", 19) != 19) return (void *)1;
    opened_fd = fd;
    mkdir("/tmp/thrdir", 0755);
    return (void *)(long)chdir("/tmp/thrdir");
}

static pthread_barrier_t gate;
static void *parked(void *arg) {
    (void)arg;
    pthread_barrier_wait(&gate); /* all started */
    pthread_barrier_wait(&gate); /* main has looked */
    return NULL;
}

static int shared_var;
static int vm_child(void *arg) {
    (void)arg;
    shared_var = 42;
    return 3;
}

static int threads_in_status(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

static int task_entries(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return d ? n : -1;
}

static volatile pid_t usr2_by;
static void on_usr2(int sig) {
    (void)sig;
    usr2_by = gettid_();
}
static int intr_pipe[2];
static volatile pid_t reader_tid;
static volatile int read_ret, read_errno;
static void *reader(void *arg) {
    (void)arg;
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    reader_tid = gettid_();
    char c;
    read_ret = (int)read(intr_pipe[0], &c, 1);
    read_errno = errno;
    return NULL;
}

static volatile int quit;
static void *napper(void *arg) {
    (void)arg;
    while (!quit) usleep(2000);
    return NULL;
}

/* A threaded child stopped and continued by job control signals, then ended. */
static void job_control(void) {
    int go[2];
    if (pipe(go)) return;
    pid_t c = fork();
    if (c == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, napper, NULL);
        char b;
        (void)!read(go[0], &b, 1);
        quit = 1;
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        _exit(9);
    }
    usleep(50000);
    int st = 0;
    kill(c, SIGSTOP);
    int w = waitpid(c, &st, WUNTRACED) == c;
    printf("threaded child stopped: %d %d sig %d\n", w, WIFSTOPPED(st), WSTOPSIG(st));
    kill(c, SIGCONT);
    w = waitpid(c, &st, WCONTINUED) == c;
    printf("threaded child continued: %d %d\n", w, WIFCONTINUED(st));
    usleep(20000);
    (void)!write(go[1], "g", 1);
    w = waitpid(c, &st, 0) == c;
    printf("threaded child ended: %d exit %d\n", w, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static int main_threads(void) {
    pid = getpid();
    printf("main: gettid == getpid: %d\n", gettid_() == pid);
    shared_fd = open("/tmp/thr.shared", O_CREAT | O_TRUNC | O_RDWR, 0644);
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        printf("create %d: %d\n", i, pthread_create(&t[i], NULL, worker, (void *)(long)i));
    for (int i = 0; i < N; i++) {
        void *r;
        int e = pthread_join(t[i], &r);
        printf("join %d: %d result %ld\n", i, e, (long)r);
    }
    int distinct = 1, notpid = 1, samepid = 1, io = 1;
    for (int i = 0; i < N; i++) {
        notpid &= tids[i] != pid && tids[i] > 0;
        samepid &= same_pid[i];
        io &= io_ok[i];
        for (int j = 0; j < i; j++) distinct &= tids[i] != tids[j];
    }
    printf("tids distinct %d, not the pid %d; getpid in threads %d; file io %d\n", distinct,
           notpid, samepid, io);
    printf("handoff order: %s\n", order);
    char all[N * 15 + 1] = {0};
    int got = pread(shared_fd, all, N * 15, 0);
    printf("shared fd: %d bytes, rec 5 at 75: %.5s\n", got, all + 75);

    /* Descriptors and cwd are the group's. */
    pthread_t o;
    void *r;
    pthread_create(&o, NULL, opener, NULL);
    pthread_join(o, &r);
    char buf[64] = {0}, cwd[64] = {0};
    int n = opened_fd >= 0 ? (int)pread(opened_fd, buf, sizeof buf - 1, 0) : -1;
    printf("thread's fd in main: %d %s", n, buf);
    printf("chdir in thread: %ld, main's cwd %s\n", (long)r, getcwd(cwd, sizeof cwd));
    chdir("/tmp");

    /* /proc/self/status Threads: and /proc/self/task. */
    pthread_barrier_init(&gate, NULL, 4);
    pthread_t p[3];
    for (int i = 0; i < 3; i++) pthread_create(&p[i], NULL, parked, NULL);
    pthread_barrier_wait(&gate);
    /* Threads joined before may still be on their way out: wait for them to go. */
    for (int i = 0; i < 200 && threads_in_status() != 4; i++) usleep(5000);
    printf("Threads: %d, task entries %d\n", threads_in_status(), task_entries());
    pthread_barrier_wait(&gate);
    for (int i = 0; i < 3; i++) pthread_join(p[i], NULL);
    /* A joined thread may still be exiting (its tid is cleared before it is gone). */
    for (int i = 0; i < 200 && threads_in_status() != 1; i++) usleep(5000);
    printf("Threads after join: %d\n", threads_in_status());

    /* pthread_kill: the handler runs in the target thread. */
    signal(SIGUSR1, on_usr1);
    pthread_t w;
    pthread_create(&w, NULL, waiter, NULL);
    while (!target_tid) usleep(1000);
    printf("kill(0) of a thread's tid: %d\n", kill(target_tid, 0));
    printf("pthread_kill: %d\n", pthread_kill(w, SIGUSR1));
    pthread_join(w, NULL);
    printf("handler ran: %d, in the target thread: %d, in main: %d\n", handled,
           handled_by == target_tid, handled_by == pid);
    printf("pthread_kill of a joined thread: %s\n", pthread_kill(w, 0) == 0 ? "0" : "error");
    long k = syscall(SYS_tgkill, pid + 100000, target_tid, 0);
    int kerr = errno;
    printf("tgkill of another group: %ld errno %d\n", k, kerr);

    /* A process-directed signal the leader blocks goes to the thread that does not,
     * and ends the read it waits in. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2; /* no SA_RESTART */
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    if (pipe(intr_pipe)) return 1;
    pthread_t rd;
    pthread_create(&rd, NULL, reader, NULL);
    while (!reader_tid) usleep(1000);
    usleep(50000); /* let it block in read */
    printf("kill(getpid(), SIGUSR2): %d\n", kill(pid, SIGUSR2));
    pthread_join(rd, NULL);
    printf("read in the unblocking thread: %d errno %d, handler in it %d\n", read_ret,
           read_errno, usr2_by == reader_tid);
    pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);

    job_control();

    /* clone(CLONE_VM) without CLONE_THREAD: a process sharing memory. */
    static char stack[64 * 1024];
    int child = clone(vm_child, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
    int status = 0;
    int waited = waitpid(child, &status, 0) == child;
    printf("clone CLONE_VM: waited %d, exit %d, shared write seen %d\n", waited,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1, shared_var);
    return 0;
}

static int pipefd[2];
static void *blocker_read(void *arg) {
    (void)arg;
    char c;
    (void)!read(pipefd[0], &c, 1);
    return NULL;
}
static void *blocker_sleep(void *arg) {
    (void)arg;
    sleep(100);
    return NULL;
}
static void *blocker_cond(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) pthread_cond_wait(&cond, &lock);
    return NULL;
}
static void *quitter(void *arg) {
    (void)arg;
    usleep(50000);
    printf("exit_group from a thread\n");
    fflush(stdout);
    exit(7);
}

static int exit_group_mode(void) {
    if (pipe(pipefd)) return 1;
    pthread_t t[4];
    pthread_create(&t[0], NULL, blocker_read, NULL);
    pthread_create(&t[1], NULL, blocker_sleep, NULL);
    pthread_create(&t[2], NULL, blocker_cond, NULL);
    pthread_create(&t[3], NULL, quitter, NULL);
    pthread_join(t[0], NULL);
    printf("not reached\n");
    return 0;
}

static int sleep_mode(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, blocker_sleep, NULL);
    printf("THREADS SLEEPING\n");
    fflush(stdout);
    pause();
    return 0;
}

/* The leader leaves with pthread_exit; the last thread ends the process. */
static void *survivor(void *arg) {
    (void)arg;
    usleep(50000);
    printf("after the leader's exit: getpid same %d, gettid other %d\n", getpid() == pid,
           gettid_() != pid);
    int fd = open("/tmp/thr.survivor", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    printf("file io after the leader's exit: %d\n", fd >= 0 && write(fd, "x", 1) == 1);
    fflush(stdout);
    exit(5);
}

static int leader_exit_mode(void) {
    pid = getpid();
    pthread_t t;
    pthread_create(&t, NULL, survivor, NULL);
    pthread_exit(NULL);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "exitgroup")) return exit_group_mode();
    if (argc > 1 && !strcmp(argv[1], "sleep")) return sleep_mode();
    if (argc > 1 && !strcmp(argv[1], "leaderexit")) return leader_exit_mode();
    return main_threads();
}
