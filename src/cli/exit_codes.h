/* kiln's exit statuses, documented in `kiln --help`, `kiln run --help` and the README. */
#ifndef KILN_EXIT_CODES_H
#define KILN_EXIT_CODES_H

enum kiln_exit {
    KILN_EXIT_OK = 0,
    KILN_EXIT_VM_FAILED = 1, /* also: the VM's API refused a request */
    KILN_EXIT_USAGE = 2,
    KILN_EXIT_BAD_IMAGE = 3,
    KILN_EXIT_NO_KVM = 4,
    KILN_EXIT_RESOURCES = 5,
    KILN_EXIT_DEVICE = 6,   /* a device backend (disk image, tap, port, socket) failed */
    KILN_EXIT_NO_SUCH_VM = 7,
    KILN_EXIT_VM_STATE = 8, /* exists already, (not) running, or another kiln command holds it */
    KILN_EXIT_JAIL = 9,     /* --jail could not be set up (not root, namespaces, cgroup) */
};

#endif
