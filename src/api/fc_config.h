/*
 * Firecracker's JSON schema <-> struct vm_spec, shared by the API's request bodies and
 * `--config-file`. Every function validates the whole object before it changes the spec,
 * so a rejected request leaves the configuration as it was. Errors are -EINVAL with a
 * one-line reason in `err` (the API's fault_message).
 */
#ifndef KILN_FC_CONFIG_H
#define KILN_FC_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct vm_spec;

/* Firecracker caps request bodies at 51200 bytes; so does kiln (and config files at 1 MiB). */
#define FC_MAX_BODY 51200
#define FC_MAX_CONFIG_FILE (1024 * 1024)

/* Parses a request body into a JSON object (NULL and `err` set if it is not one). */
json_t *fc_parse_object(const char *body, size_t len, char *err, size_t errlen);

int fc_put_boot_source(struct vm_spec *spec, json_t *body, char *err, size_t errlen);
/* PUT needs vcpu_count and mem_size_mib; PATCH (`patch`) changes only what is given. */
int fc_put_machine_config(struct vm_spec *spec, json_t *body, bool patch, char *err,
                          size_t errlen);
/* `path_id` is the id in the URL (NULL in a config file); it must match the body's. */
int fc_put_drive(struct vm_spec *spec, const char *path_id, json_t *body, char *err,
                 size_t errlen);
int fc_put_network_interface(struct vm_spec *spec, const char *path_id, json_t *body, char *err,
                             size_t errlen);
int fc_put_vsock(struct vm_spec *spec, json_t *body, char *err, size_t errlen);
int fc_put_entropy(struct vm_spec *spec, json_t *body, char *err, size_t errlen);

/* A whole config-file document ("boot-source", "machine-config", "drives", ...). */
int fc_config_apply(struct vm_spec *spec, json_t *root, char *err, size_t errlen);
int fc_config_load_file(struct vm_spec *spec, const char *path, char *err, size_t errlen);

/* GET /machine-config and GET /vm/config. New references; NULL only without memory. */
json_t *fc_machine_config_json(const struct vm_spec *spec);
json_t *fc_config_json(const struct vm_spec *spec);

#endif
