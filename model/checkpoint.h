/* model/checkpoint.h — read-only access to the tensors of a checkpoint file: the upstream
 * PyTorch `.pth` (zip archive + pickle protocol 2 state dict, as torch.save writes it) and
 * `.safetensors`. The file is memory-mapped; tensor data points into the mapping and is never
 * copied. Knows nothing of what the tensors mean (that is model/weights). */
#ifndef VR_CHECKPOINT_H
#define VR_CHECKPOINT_H

#include "common/error.h"
#include "kernels/tensor.h"

typedef struct vr_checkpoint vr_checkpoint;

typedef struct vr_checkpoint_entry {
    char *name;       /* state-dict key, e.g. "rwkv.blocks.0.att.key.weight" */
    vr_tensor tensor; /* dtype F32/F16/BF16/I64 (I32 for safetensors), contiguous, data in the mapping */
} vr_checkpoint_entry;

/* Opens path; the format is detected from the content (zip magic "PK\3\4" -> .pth,
 * else an 8-byte little-endian header length + JSON -> safetensors).
 * Every failure names the file, the tensor (where one is involved) and what was wrong. */
vr_status vr_checkpoint_open(const char *path, vr_checkpoint **out, vr_error *err);
/* Parses from bytes already in memory (used by the fuzz targets); bytes must outlive the result. */
vr_status vr_checkpoint_open_memory(const void *data, size_t size, const char *name, vr_checkpoint **out,
                                    vr_error *err);
void vr_checkpoint_free(vr_checkpoint *ck);

int vr_checkpoint_count(const vr_checkpoint *ck);
const vr_checkpoint_entry *vr_checkpoint_entry_at(const vr_checkpoint *ck, int i); /* file order */
/* NULL when absent. */
const vr_tensor *vr_checkpoint_find(const vr_checkpoint *ck, const char *name);
const char *vr_checkpoint_path(const vr_checkpoint *ck);

/* Writes a .safetensors file from n named tensors (data taken from each tensor's host pointer).
 * Used by `vrwkv mkmodel` and by tests that build checkpoints. */
vr_status vr_safetensors_write(const char *path, const vr_checkpoint_entry *entries, int n, vr_error *err);

/* Writes a PyTorch-format `.pth` (stored zip + protocol-2 pickle of an OrderedDict of
 * _rebuild_tensor_v2 tensors), readable by torch.load and by vr_checkpoint_open. */
vr_status vr_pth_write(const char *path, const vr_checkpoint_entry *entries, int n, vr_error *err);

#endif
