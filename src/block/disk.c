#include "block/disk.h"

#include <string.h>

int disk_open(struct disk *disk, const struct disk_config *cfg, char *err, size_t errlen)
{
    memset(disk, 0, sizeof(*disk));
    disk->fd = -1;
    /* Only raw images so far; a format probe would choose the ops here. */
    disk->ops = &disk_raw_ops;
    return disk->ops->open(disk, cfg, err, errlen);
}

void disk_close(struct disk *disk)
{
    if (disk->ops)
        disk->ops->close(disk);
    disk->ops = NULL;
}
