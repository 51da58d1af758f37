/* The lifecycle CLI's state directory: names, paths, runtime records, locks, stale state. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/state_dir.h"

static void name_accepts_plain_names(void **state)
{
    assert_int_equal(vm_name_check("web1"), 0);
    assert_int_equal(vm_name_check("a"), 0);
    assert_int_equal(vm_name_check("My_VM-2.test"), 0);
    char longest[VM_NAME_MAX + 1];
    memset(longest, 'x', VM_NAME_MAX);
    longest[VM_NAME_MAX] = '\0';
    assert_int_equal(vm_name_check(longest), 0);
}

static void name_rejects_path_tricks(void **state)
{
    static const char *const bad[] = {"",      ".",       "..",   "../etc", "a/b",
                                      "/abs",  ".hidden", "-rf",  "a b",    "a\nb",
                                      "naïve", "a\\b",    "x;rm", "$HOME",  "a*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vm_name_check(bad[i]), -EINVAL);
    char too_long[VM_NAME_MAX + 2];
    memset(too_long, 'x', VM_NAME_MAX + 1);
    too_long[VM_NAME_MAX + 1] = '\0';
    assert_int_equal(vm_name_check(too_long), -EINVAL);
}

/* A fake environment for state_dir_resolve: one table per test. */
struct fake_env {
    const char *state, *xdg, *home;
};
static const struct fake_env *current_env;

static const char *fake_getenv(const char *name)
{
    if (!strcmp(name, "KILN_STATE_DIR"))
        return current_env->state;
    if (!strcmp(name, "XDG_STATE_HOME"))
        return current_env->xdg;
    if (!strcmp(name, "HOME"))
        return current_env->home;
    return NULL;
}

static void resolve(const struct fake_env *env, uid_t uid, int expect_ret, const char *expect)
{
    char buf[STATE_PATH_MAX];
    current_env = env;
    assert_int_equal(state_dir_resolve(buf, sizeof(buf), uid, fake_getenv), expect_ret);
    if (expect)
        assert_string_equal(buf, expect);
}

static void state_dir_precedence(void **state)
{
    resolve(&(struct fake_env){"/t/s", "/x", "/home/u"}, 1000, 0, "/t/s");
    resolve(&(struct fake_env){"/t/s", NULL, NULL}, 0, 0, "/t/s");
    resolve(&(struct fake_env){NULL, "/x", "/home/u"}, 0, 0, "/var/lib/kiln");
    resolve(&(struct fake_env){"", "/x", "/home/u"}, 1000, 0, "/x/kiln");
    resolve(&(struct fake_env){NULL, NULL, "/home/u"}, 1000, 0, "/home/u/.local/state/kiln");
    /* The XDG spec says a relative XDG_STATE_HOME is to be ignored. */
    resolve(&(struct fake_env){NULL, "rel", "/home/u"}, 1000, 0, "/home/u/.local/state/kiln");
    resolve(&(struct fake_env){NULL, NULL, NULL}, 1000, -ENOENT, NULL);
    char huge[STATE_PATH_MAX + 10];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[0] = '/';
    huge[sizeof(huge) - 1] = '\0';
    resolve(&(struct fake_env){huge, NULL, NULL}, 1000, -ENAMETOOLONG, NULL);
}

static void vm_paths(void **state)
{
    char buf[64];
    assert_int_equal(vm_path(buf, sizeof(buf), "/s", "vm1", NULL), 0);
    assert_string_equal(buf, "/s/vm1");
    assert_int_equal(vm_path(buf, sizeof(buf), "/s", "vm1", VM_FILE_API_SOCK), 0);
    assert_string_equal(buf, "/s/vm1/api.sock");
    assert_int_equal(vm_path(buf, 8, "/s", "vm1", VM_FILE_API_SOCK), -ENAMETOOLONG);
}

/* A fresh temporary state directory with one VM directory, "vm". */
static int make_vm_dir(void **state)
{
    char *dir = malloc(64);
    strcpy(dir, "/tmp/kiln-test-state-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/vm", dir);
    if (mkdir(sub, 0700) < 0)
        return -1;
    *state = dir;
    return 0;
}

static int remove_vm_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
    int ret = system(cmd);
    free(*state);
    return ret == 0 ? 0 : -1;
}

static void vm_dir_of(void **state, char *buf, size_t len)
{
    snprintf(buf, len, "%s/vm", (char *)*state);
}

static void ensure_makes_parents(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/a/b/kiln", (char *)*state);
    assert_int_equal(state_dir_ensure(path), 0);
    assert_int_equal(state_dir_ensure(path), 0); /* idempotent */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void atomic_write_replaces(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/vm/config.json", (char *)*state);
    assert_int_equal(write_file_atomic(path, "first", 5), 0);
    assert_int_equal(write_file_atomic(path, "second!", 7), 0);
    char buf[16] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof(buf), f), 7);
    fclose(f);
    assert_string_equal(buf, "second!");
    /* No temporary file is left behind. */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s/vm' | wc -l) -eq 1", (char *)*state);
    assert_int_equal(system(cmd), 0);
}

static void runtime_round_trip(void **state)
{
    char dir[128];
    vm_dir_of(state, dir, sizeof(dir));
    struct vm_runtime rt = {.pid = getpid(), .started_at = 1700000000};
    assert_int_equal(proc_start_ticks(getpid(), &rt.proc_start_ticks), 0);
    assert_int_equal(vm_runtime_write(dir, &rt), 0);
    struct vm_runtime back;
    assert_int_equal(vm_runtime_read(dir, &back), 0);
    assert_int_equal(back.pid, rt.pid);
    assert_int_equal(back.proc_start_ticks, rt.proc_start_ticks);
    assert_int_equal(back.started_at, rt.started_at);
    assert_true(vm_runtime_alive(&back));
    assert_int_equal(vm_runtime_probe(dir, &back, false), 1);
}

static void runtime_missing_and_garbage(void **state)
{
    char dir[128], path[160];
    vm_dir_of(state, dir, sizeof(dir));
    struct vm_runtime rt;
    assert_int_equal(vm_runtime_read(dir, &rt), -ENOENT);
    assert_int_equal(vm_runtime_probe(dir, &rt, false), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, VM_FILE_RUNTIME);
    static const char *const bad[] = {"not json",
                                      "{\"pid\": -4, \"proc_start_ticks\": 1, "
                                      "\"started_at\": 1}",
                                      "{\"pid\": \"12\", \"proc_start_ticks\": 1, "
                                      "\"started_at\": 1}",
                                      "{\"pid\": 99999999999, \"proc_start_ticks\": 1, "
                                      "\"started_at\": 1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(write_file_atomic(path, bad[i], strlen(bad[i])), 0);
        assert_int_equal(vm_runtime_read(dir, &rt), -EINVAL);
        /* An unreadable record is a leftover: probing cleans it. */
        assert_int_equal(vm_runtime_probe(dir, &rt, false), 0);
        assert_int_equal(access(path, F_OK), -1);
    }
}

/* A record of a process that has exited, and one whose pid was reused by another process. */
static void runtime_dead_or_reused_pid_is_stale(void **state)
{
    char dir[128], sock[160];
    vm_dir_of(state, dir, sizeof(dir));
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    struct vm_runtime rt = {.pid = child, .proc_start_ticks = 1, .started_at = 1};
    assert_false(vm_runtime_alive(&rt));
    assert_int_equal(vm_runtime_write(dir, &rt), 0);
    snprintf(sock, sizeof(sock), "%s/%s", dir, VM_FILE_API_SOCK);
    assert_int_equal(write_file_atomic(sock, "", 0), 0);
    assert_int_equal(vm_runtime_probe(dir, &rt, false), 0);
    assert_int_equal(access(sock, F_OK), -1); /* a stale socket must not block a restart */

    /* This process is alive, but started at another time than recorded: not the VM. */
    rt = (struct vm_runtime){.pid = getpid(), .started_at = 1};
    assert_int_equal(proc_start_ticks(getpid(), &rt.proc_start_ticks), 0);
    rt.proc_start_ticks += 1;
    assert_false(vm_runtime_alive(&rt));
}

static void zombie_is_not_alive(void **state)
{
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    struct vm_runtime rt = {.pid = child};
    /* Until reaped, the exited child stays a zombie in /proc. */
    for (int i = 0; i < 1000; i++) {
        char path[64], buf[256];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (p && p[2] == 'Z')
            break;
        usleep(1000);
    }
    assert_int_equal(proc_start_ticks(child, &rt.proc_start_ticks), 0);
    assert_false(vm_runtime_alive(&rt));
    waitpid(child, NULL, 0);
}

static void lock_is_exclusive(void **state)
{
    char dir[128];
    vm_dir_of(state, dir, sizeof(dir));
    int fd = vm_lock(dir);
    assert_true(fd >= 0);
    /* Another command (here: another open file description) finds it busy. */
    assert_int_equal(vm_lock(dir), -EBUSY);
    pid_t child = fork();
    if (child == 0)
        _exit(vm_lock(dir) == -EBUSY ? 0 : 1);
    int status;
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd);
    fd = vm_lock(dir);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(vm_lock("/nonexistent/kiln/vm"), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(name_accepts_plain_names),
        cmocka_unit_test(name_rejects_path_tricks),
        cmocka_unit_test(state_dir_precedence),
        cmocka_unit_test(vm_paths),
        cmocka_unit_test_setup_teardown(ensure_makes_parents, make_vm_dir, remove_vm_dir),
        cmocka_unit_test_setup_teardown(atomic_write_replaces, make_vm_dir, remove_vm_dir),
        cmocka_unit_test_setup_teardown(runtime_round_trip, make_vm_dir, remove_vm_dir),
        cmocka_unit_test_setup_teardown(runtime_missing_and_garbage, make_vm_dir, remove_vm_dir),
        cmocka_unit_test_setup_teardown(runtime_dead_or_reused_pid_is_stale, make_vm_dir,
                                        remove_vm_dir),
        cmocka_unit_test(zombie_is_not_alive),
        cmocka_unit_test_setup_teardown(lock_is_exclusive, make_vm_dir, remove_vm_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
