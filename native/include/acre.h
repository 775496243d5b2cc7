/*
 * acre.h: the C ABI of acre's native runtime core.
 *
 * Everything a host (Python, the JVM through JNI, Swift, a C++ command-line runner) needs crosses
 * this header as opaque handles, plain structs, integers and UTF-8 strings; no C++ type crosses it.
 *
 * Errors: every function that can fail returns an acre_status. On failure acre_last_error() gives
 * a message naming the cause (the file, the field, the input), valid on the calling thread until
 * its next call into the core. No function aborts or throws on bad input.
 *
 * Ownership: a handle made by acre_X_open / acre_X_new is released with acre_X_free (free of NULL
 * is a no-op). Buffers passed in stay owned by the caller; the core never keeps a pointer to them
 * beyond the call, except the user pointer given to a step callback engine.
 *
 * This slice covers the bundle, the tokenizer and the step program. The pot, the L2 store, span
 * selection and the session are to come behind this same header (see native/README.md).
 */
#ifndef ACRE_H
#define ACRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ACRE_ABI_VERSION 1

/* ---- status and errors ------------------------------------------------------------------- */

typedef enum acre_status {
  ACRE_OK = 0,
  ACRE_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a buffer of the wrong size, an id out of range */
  ACRE_ERR_BUNDLE = 2,           /* bundle missing, corrupt, of another version, or inconsistent */
  ACRE_ERR_TOKENIZER = 3,        /* tokenizer.json unreadable or of a kind the core cannot run */
  ACRE_ERR_ENGINE = 4,           /* the step program failed to load or run */
  ACRE_ERR_UNSUPPORTED = 5,      /* a feature this build of the core does not have */
  ACRE_ERR_BUFFER_TOO_SMALL = 6, /* the output did not fit; the needed size was written */
  ACRE_ERR_INTERNAL = 7          /* a bug or out of memory; the message says which */
} acre_status;

/* The message of the last failed call on this thread ("" if none). */
const char *acre_last_error(void);
/* A short constant name for a status, such as "bundle". */
const char *acre_status_name(acre_status status);
/* ACRE_ABI_VERSION of the library actually loaded (a host checks it against its header). */
int32_t acre_abi_version(void);

/* ---- tensors ----------------------------------------------------------------------------- */

typedef enum acre_dtype {
  ACRE_DTYPE_INVALID = 0,
  ACRE_DTYPE_FLOAT32 = 1,
  ACRE_DTYPE_FLOAT16 = 2,
  ACRE_DTYPE_INT64 = 3,
  ACRE_DTYPE_INT32 = 4,
  ACRE_DTYPE_UINT8 = 5,
  ACRE_DTYPE_BOOL = 6
} acre_dtype;

#define ACRE_MAX_DIMS 8

/* What one input or output of a step method is: name (as the manifest lists it), dtype, shape. */
typedef struct acre_tensor_info {
  const char *name; /* owned by the engine, valid while it lives */
  acre_dtype dtype;
  int32_t rank;
  int64_t dims[ACRE_MAX_DIMS];
  size_t bytes; /* product of dims times the dtype's size */
} acre_tensor_info;

/* A caller-owned buffer: the core reads or writes exactly `bytes` bytes at `data`. */
typedef struct acre_buffer {
  void *data;
  size_t bytes;
} acre_buffer;

/* Bytes of one element of a dtype (0 for ACRE_DTYPE_INVALID). */
size_t acre_dtype_size(acre_dtype dtype);

/* The dtype's name as the manifest and numpy spell it ("float32", ...; "invalid" for others). */
const char *acre_dtype_name(acre_dtype dtype);

/* ---- bundle ------------------------------------------------------------------------------ */

/* Bundle format versions this core reads. 1: pot keys un-rotated, the pot as two [L, Hkv, P, D]
 * inputs; 2: keys rotated at their positions, one pot input per layer. The step signature is read
 * from the manifest, so the core runs either. */
#define ACRE_BUNDLE_VERSION_MIN 1
#define ACRE_BUNDLE_VERSION_MAX 2

typedef struct acre_bundle acre_bundle;

/* The model geometry and step shapes the manifest promises. */
typedef struct acre_geometry {
  int32_t layers, heads, kv_heads, head_dim, hidden, intermediate, vocab, window;
  double rope_theta, rms_eps;
  int32_t chunk;       /* rows of the prefill method (C) */
  int32_t pot;         /* pot capacity (P) */
  acre_dtype kv_dtype; /* dtype of the pot's K/V and of k_new/v_new */
} acre_geometry;

/* Open and validate a bundle directory: format name and version, the fields a runtime reads, and
 * every listed file's presence, size and (when verify_checksums) sha256. A failure is
 * ACRE_ERR_BUNDLE with a message naming the file. */
acre_status acre_bundle_open(const char *dir, int verify_checksums, acre_bundle **out);
void acre_bundle_free(acre_bundle *bundle);
/* The bundle directory as given, and manifest.json's text (both owned by the bundle). */
const char *acre_bundle_root(const acre_bundle *bundle);
const char *acre_bundle_manifest_json(const acre_bundle *bundle);
acre_status acre_bundle_geometry(const acre_bundle *bundle, acre_geometry *out);
/* Path of the program file for an engine ("executorch", "onnx", "coreml"); owned by the bundle. */
acre_status acre_bundle_program_path(const acre_bundle *bundle, const char *engine, const char **path);

/* ---- tokenizer --------------------------------------------------------------------------- */

typedef struct acre_tokenizer acre_tokenizer;

/* Load a Hugging Face tokenizer.json. The core runs byte-level BPE (ByteLevel pre-tokenizer with
 * the GPT-2 regex, no normalizer, BPE model, added tokens); anything else is refused with
 * ACRE_ERR_TOKENIZER naming what it cannot run. */
acre_status acre_tokenizer_open(const char *tokenizer_json_path, acre_tokenizer **out);
/* The tokenizer the bundle ships (tokenizer/tokenizer.json under the manifest's tokenizer dir). */
acre_status acre_bundle_tokenizer(const acre_bundle *bundle, acre_tokenizer **out);
void acre_tokenizer_free(acre_tokenizer *tokenizer);
/* Number of ids (the model vocabulary and the added tokens). */
int32_t acre_tokenizer_vocab_size(const acre_tokenizer *tokenizer);

/* Encode UTF-8 text (no special tokens added; special tokens written in the text are recognised).
 * Writes at most `capacity` ids and sets *n_ids to the count; a capacity of text_len always
 * suffices (every id covers at least one byte). Too small: ACRE_ERR_BUFFER_TOO_SMALL, *n_ids set
 * to the count needed. Text that is not valid UTF-8 is ACRE_ERR_INVALID_ARGUMENT. */
acre_status acre_tokenize(const acre_tokenizer *tokenizer, const char *text, size_t text_len, int32_t *ids,
                          size_t capacity, size_t *n_ids);

/* Decode ids to UTF-8 (byte sequences that are not valid UTF-8 become U+FFFD), skipping special
 * tokens when skip_special is non-zero. Writes at most `capacity` bytes (no terminating NUL) and
 * sets *n_bytes; too small: ACRE_ERR_BUFFER_TOO_SMALL with *n_bytes set to the size needed. */
acre_status acre_detokenize(const acre_tokenizer *tokenizer, const int32_t *ids, size_t n_ids,
                            int skip_special, char *out, size_t capacity, size_t *n_bytes);

/* The id of a token as written in the vocabulary or the added tokens ("<|im_end|>"). */
acre_status acre_token_to_id(const acre_tokenizer *tokenizer, const char *token, int32_t *id);

/* ---- step engine ------------------------------------------------------------------------- */

/*
 * An engine runs the bundle's step program: one transformer pass of `rows` tokens over the pot.
 * rows is the prefill chunk (C) or 1 (decode). Inputs and outputs are buffers in the order the
 * manifest lists them under step.inputs / step.outputs; acre_engine_input_info says each one's
 * dtype and shape.
 */
typedef struct acre_engine acre_engine;

/* A host's own engine (Core ML, the eager torch module, ONNX Runtime). Called with the inputs and
 * the output buffers to fill, in manifest order and of the sizes acre_engine_*_info give. Returns
 * 0 on success; otherwise non-zero, with a NUL-terminated message in error[0..error_capacity). */
typedef int32_t (*acre_step_fn)(void *user, int32_t rows, const acre_buffer *inputs, size_t n_inputs,
                                const acre_buffer *outputs, size_t n_outputs, char *error,
                                size_t error_capacity);

/* Run the bundle's model.pte through ExecuTorch's C++ runtime (methods "prefill" and "decode").
 * The program's inputs are checked against the manifest (count, names' shapes, pot dtype). */
acre_status acre_engine_open_executorch(const acre_bundle *bundle, acre_engine **out);
/* An engine that calls `step`; shapes come from the manifest. free_user (may be NULL) is called
 * with `user` when the engine is freed, or before this call returns if it fails. */
acre_status acre_engine_open_callback(const acre_bundle *bundle, acre_step_fn step, void *user,
                                      void (*free_user)(void *user), acre_engine **out);
void acre_engine_free(acre_engine *engine);
/* "executorch" or "callback" (owned by the engine). */
const char *acre_engine_name(const acre_engine *engine);

size_t acre_engine_num_inputs(const acre_engine *engine);
size_t acre_engine_num_outputs(const acre_engine *engine);
acre_status acre_engine_input_info(const acre_engine *engine, int32_t rows, size_t index,
                                   acre_tensor_info *out);
acre_status acre_engine_output_info(const acre_engine *engine, int32_t rows, size_t index,
                                    acre_tensor_info *out);

/* One step. Each buffer must have exactly the bytes its info gives. Inputs are handed to the
 * program without a copy where the program lets its inputs be supplied (ExecuTorch copies inputs
 * into memory it planned for them); outputs are written into the caller's buffers. */
acre_status acre_engine_step(acre_engine *engine, int32_t rows, const acre_buffer *inputs, size_t n_inputs,
                             const acre_buffer *outputs, size_t n_outputs);

#ifdef __cplusplus
}
#endif

#endif /* ACRE_H */
