/* --jail-* option parsing (cli/jail_options.c), run_options' jail rules, and the cgroup2
 * mount lookup in mountinfo text (jail/cgroup.c). No root, no namespaces needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli/jail_options.h"
#include "cli/run_options.h"
#include "jail/cgroup.h"
#include "jail/jail.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void cgroup_all_keys(void **state)
{
    struct jail_cgroup_config cg;
    char err[256];
    assert_int_equal(parse_jail_cgroup_option("memory.max=512M,cpu.max=50000,pids.max=64", &cg, err,
                                              sizeof(err)),
                     0);
    assert_true(cg.enabled && cg.has_memory && cg.has_cpu && cg.has_pids);
    assert_int_equal(cg.memory_max, 512ULL << 20);
    assert_int_equal(cg.cpu_quota, 50000);
    assert_int_equal(cg.cpu_period, 100000);
    assert_int_equal(cg.pids_max, 64);
}

static void cgroup_max_and_period(void **state)
{
    struct jail_cgroup_config cg;
    char err[256];
    assert_int_equal(parse_jail_cgroup_option("cpu.max=max/20000", &cg, err, sizeof(err)), 0);
    assert_true(cg.has_cpu && !cg.has_memory && !cg.has_pids);
    assert_true(cg.cpu_quota == CGROUP_MAX);
    assert_int_equal(cg.cpu_period, 20000);
    assert_int_equal(parse_jail_cgroup_option("memory.max=max", &cg, err, sizeof(err)), 0);
    assert_true(cg.memory_max == CGROUP_MAX);
}

static void cgroup_errors(void **state)
{
    struct jail_cgroup_config cg;
    char err[256];
    static const char *bad[] = {
        "",                      /* nothing */
        "memory.max",            /* no value */
        "memory.max=",           /* empty value */
        "memory.max=12Q",        /* not a size */
        "memory.max=4K",         /* below 1M */
        "cpu.max=500",           /* quota below 1 ms */
        "cpu.max=50000/999",     /* period below 1 ms */
        "cpu.max=50000/2000000", /* period above 1 s */
        "cpu.max=/100000",       /* no quota */
        "pids.max=0",            /* no task at all */
        "pids.max=-1",
        "io.max=1",     /* not supported */
        "pids.max=8,,", /* empty item */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(parse_jail_cgroup_option(bad[i], &cg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "--jail-cgroup"));
    }
}

static void rlimit_forms(void **state)
{
    struct jail_rlimit_config rl = {.nofile = 2048};
    char err[256];
    assert_int_equal(parse_jail_rlimit_option("fsize=1G,nproc=100", &rl, err, sizeof(err)), 0);
    assert_int_equal(rl.nofile, 2048);
    assert_int_equal(rl.fsize, 1ULL << 30);
    assert_int_equal(rl.nproc, 100);
    assert_int_equal(parse_jail_rlimit_option("nofile=10", &rl, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "nofile"));
    assert_int_equal(parse_jail_rlimit_option("stack=1M", &rl, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_jail_rlimit_option("fsize=0", &rl, err, sizeof(err)), -EINVAL);
}

static void ids(void **state)
{
    uint32_t id;
    char err[256];
    assert_int_equal(parse_jail_id("--jail-uid", "1000", &id, err, sizeof(err)), 0);
    assert_int_equal(id, 1000);
    assert_int_equal(parse_jail_id("--jail-uid", "0", &id, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not root"));
    assert_int_equal(parse_jail_id("--jail-gid", "4294967295", &id, err, sizeof(err)), -EINVAL);
    assert_int_equal(parse_jail_id("--jail-gid", "nobody", &id, err, sizeof(err)), -EINVAL);
}

static int parse(struct vm_config *cfg, char *err, size_t errlen, int argc, char **argv)
{
    return run_options_parse(argc, argv, cfg, err, errlen);
}

static void run_options_jail(void **state)
{
    struct vm_config cfg;
    char err[256];
    char *plain[] = {"run", "-k", "k"};
    assert_int_equal(parse(&cfg, err, sizeof(err), 3, plain), 0);
    assert_null(cfg.jail.dir);
    char *jailed[] = {"run",  "-k",           "k",    "--jail",        "/srv/vm1",   "--jail-uid",
                      "1234", "--jail-netns", "blue", "--jail-cgroup", "pids.max=9", "--jail-gid",
                      "99"};
    assert_int_equal(parse(&cfg, err, sizeof(err), 13, jailed), 0);
    assert_string_equal(cfg.jail.dir, "/srv/vm1");
    assert_int_equal(cfg.jail.uid, 1234);
    assert_int_equal(cfg.jail.gid, 99);
    assert_string_equal(cfg.jail.netns, "blue");
    assert_true(cfg.jail.cgroup.enabled && cfg.jail.cgroup.pids_max == 9);
    assert_int_equal(cfg.jail.rlimit.nofile, JAIL_DEFAULT_NOFILE);
    char *defaults[] = {"run", "-k", "k", "--jail", "d"};
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, defaults), 0);
    assert_int_equal(cfg.jail.uid, JAIL_DEFAULT_ID);
    assert_int_equal(cfg.jail.gid, JAIL_DEFAULT_ID);
    assert_false(cfg.jail.cgroup.enabled);
    char *orphan[] = {"run", "-k", "k", "--jail-netns", "blue"};
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, orphan), -EINVAL);
    assert_non_null(strstr(err, "--jail DIR"));
    char *empty[] = {"run", "-k", "k", "--jail", ""};
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, empty), -EINVAL);
}

static void mountinfo_cgroup2(void **state)
{
    char out[256];
    const char *hybrid =
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    assert_int_equal(cgroup2_mount_point(hybrid, out, sizeof(out)), 0);
    assert_string_equal(out, "/sys/fs/cgroup/unified");
    const char *tagged = "29 1 0:26 / /sys/fs/cgroup rw shared:4 master:1 - cgroup2 none rw";
    assert_int_equal(cgroup2_mount_point(tagged, out, sizeof(out)), 0);
    assert_string_equal(out, "/sys/fs/cgroup");
    const char *escaped = "29 1 0:26 / /mnt/cg\\040two rw - cgroup2 none rw\n";
    assert_int_equal(cgroup2_mount_point(escaped, out, sizeof(out)), 0);
    assert_string_equal(out, "/mnt/cg two");
    const char *v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    assert_int_equal(cgroup2_mount_point(v1, out, sizeof(out)), -ENOENT);
    /* a path named like the type does not count */
    const char *decoy = "50 1 0:40 / /cgroup2 rw - ext4 /dev/sda1 rw\n";
    assert_int_equal(cgroup2_mount_point(decoy, out, sizeof(out)), -ENOENT);
    char tiny[8];
    assert_int_equal(cgroup2_mount_point(hybrid, tiny, sizeof(tiny)), -ENAMETOOLONG);
}

/* Paths the VM uses after it is jailed: disks absolute, the vsock socket relative to DIR. */
static void rewrite_paths(void **state)
{
    char tmpl[] = "/tmp/kiln-jail-unit-XXXXXX", sub[64], err[256];
    assert_non_null(mkdtemp(tmpl));
    snprintf(sub, sizeof(sub), "%s/run", tmpl);
    assert_int_equal(mkdir(sub, 0755), 0);
    struct jail j = {.cfg = NULL};
    assert_non_null(realpath(tmpl, j.root));
    struct vm_config cfg = {.ndisks = 1};
    snprintf(cfg.disks[0].path, sizeof(cfg.disks[0].path), "root.img");
    cfg.vsock.enabled = true;
    snprintf(cfg.vsock.uds_path, sizeof(cfg.vsock.uds_path), "%s/run/v.sock", tmpl);
    assert_int_equal(jail_rewrite_paths(&j, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.vsock.uds_path, "run/v.sock");
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/root.img", cwd);
    assert_string_equal(cfg.disks[0].path, want);
    /* directly in DIR, through "..", and outside it */
    snprintf(cfg.vsock.uds_path, sizeof(cfg.vsock.uds_path), "%s/run/../v.sock", tmpl);
    assert_int_equal(jail_rewrite_paths(&j, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.vsock.uds_path, "v.sock");
    snprintf(cfg.vsock.uds_path, sizeof(cfg.vsock.uds_path), "%s/../v.sock", tmpl);
    assert_int_equal(jail_rewrite_paths(&j, &cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "must lie inside"));
    /* a sibling whose name starts with DIR's is not inside it */
    char other[64];
    snprintf(other, sizeof(other), "%s-other", tmpl);
    assert_int_equal(mkdir(other, 0755), 0);
    snprintf(cfg.vsock.uds_path, sizeof(cfg.vsock.uds_path), "%s/v.sock", other);
    assert_int_equal(jail_rewrite_paths(&j, &cfg, err, sizeof(err)), -EINVAL);
    rmdir(other);
    snprintf(cfg.vsock.uds_path, sizeof(cfg.vsock.uds_path), "%s/", tmpl);
    assert_int_equal(jail_rewrite_paths(&j, &cfg, err, sizeof(err)), -EINVAL);
    rmdir(sub);
    rmdir(tmpl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cgroup_all_keys),
        cmocka_unit_test(cgroup_max_and_period),
        cmocka_unit_test(cgroup_errors),
        cmocka_unit_test(rlimit_forms),
        cmocka_unit_test(ids),
        cmocka_unit_test(run_options_jail),
        cmocka_unit_test(mountinfo_cgroup2),
        cmocka_unit_test(rewrite_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
