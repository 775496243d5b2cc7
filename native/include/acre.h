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
 * This slice covers the bundle, the tokenizer, the step program, the L2 store, span selection (the
 * span index, BM25, the choice of spans and their place in the pot), the pot (its K/V, positions,
 * mask and slot table, and the moves that keep keys rotated at their positions), the policies, the
 * session (ingest, reopen, resume, questions: selection, refill, decode) and sampling.
 */
#ifndef ACRE_H
#define ACRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ACRE_ABI_VERSION                                                                                   \
  7 /* 2: the L2 store, ACRE_DTYPE_INT8; 3: span index, BM25, span selection; 4: the pot; 5: policies, the \
       session's ingest, reopen and resume; 6: the bundle fingerprint; 7: acre_engine_calls, methods by    \
       rows */

/* ---- status and errors ------------------------------------------------------------------- */

typedef enum acre_status {
  ACRE_OK = 0,
  ACRE_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a buffer of the wrong size, an id out of range */
  ACRE_ERR_BUNDLE = 2,           /* bundle missing, corrupt, of another version, or inconsistent */
  ACRE_ERR_TOKENIZER = 3,        /* tokenizer.json unreadable or of a kind the core cannot run */
  ACRE_ERR_ENGINE = 4,           /* the step program failed to load or run */
  ACRE_ERR_UNSUPPORTED = 5,      /* a feature this build of the core does not have */
  ACRE_ERR_BUFFER_TOO_SMALL = 6, /* the output did not fit; the needed size was written */
  ACRE_ERR_INTERNAL = 7,         /* a bug or out of memory; the message says which */
  ACRE_ERR_STORE = 8,            /* an L2 store missing, corrupt, of another version or model, locked */
  ACRE_ERR_CANCELLED = 9         /* a host's callback stopped the call (its progress callback said stop) */
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
  ACRE_DTYPE_BOOL = 6,
  ACRE_DTYPE_INT8 = 7
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
/* The dtype of a name acre_dtype_name gives (ACRE_DTYPE_INVALID for any other name). */
acre_dtype acre_dtype_from_name(const char *name);

/* A named array passed to or returned by the core: info.bytes bytes at data, C order. */
typedef struct acre_array {
  acre_tensor_info info;
  const void *data;
} acre_array;

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
/* What identifies the model and programs the bundle runs, for an L2 store's meta (a session's config
 * fingerprint): the sha256 hex of json.dumps({geometry, step, programs: each non-tokenizer file's
 * sha256}, sort_keys=True) of the manifest, as Python's json module writes it (owned by the bundle). */
const char *acre_bundle_fingerprint(const acre_bundle *bundle);
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

/* As acre_tokenize, and also each id's byte range in the text: offsets[2i] its first byte,
 * offsets[2i+1] one past its last (2 * capacity values). Where a word's ids do not add up to its
 * bytes (an unknown token), each of them gets the whole word's range. */
acre_status acre_tokenize_offsets(const acre_tokenizer *tokenizer, const char *text, size_t text_len,
                                  int32_t *ids, uint32_t *offsets, size_t capacity, size_t *n_ids);

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
 * rows is one of its methods': the prefill chunk (C), 1 (decode) and, in an ExecuTorch program that
 * has it, C/4 ("short": a question). A session steps each piece with the fewest rows that hold it. Inputs and
 * outputs are buffers in the order the manifest lists them under step.inputs / step.outputs;
 * acre_engine_input_info says each one's dtype and shape.
 */
typedef struct acre_engine acre_engine;

/* A host's own engine (Core ML, the eager torch module, ONNX Runtime). Called with the inputs and
 * the output buffers to fill, in manifest order and of the sizes acre_engine_*_info give. Returns
 * 0 on success; otherwise non-zero, with a NUL-terminated message in error[0..error_capacity). */
typedef int32_t (*acre_step_fn)(void *user, int32_t rows, const acre_buffer *inputs, size_t n_inputs,
                                const acre_buffer *outputs, size_t n_outputs, char *error,
                                size_t error_capacity);

/* Run the bundle's model.pte through ExecuTorch's C++ runtime (the methods its manifest lists).
 * The program's inputs are checked against the manifest (count, names' shapes, pot dtype). */
acre_status acre_engine_open_executorch(const acre_bundle *bundle, acre_engine **out);
/* An engine that calls `step`; shapes come from the manifest. free_user (may be NULL) is called
 * with `user` when the engine is freed, or before this call returns if it fails. */
acre_status acre_engine_open_callback(const acre_bundle *bundle, acre_step_fn step, void *user,
                                      void (*free_user)(void *user), acre_engine **out);
void acre_engine_free(acre_engine *engine);
/* "executorch" or "callback" (owned by the engine). */
const char *acre_engine_name(const acre_engine *engine);
/* Bytes of activation memory the engine's program plans for its methods (ExecuTorch's memory
 * plan; 0 for an engine that does not say): part of the process's RAM, apart from the weights. */
size_t acre_engine_planned_bytes(const acre_engine *engine);

/* Steps the method of `rows` rows has run; 0 for rows no method runs. */
uint64_t acre_engine_calls(const acre_engine *engine, int32_t rows);

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

/* ---- L2 store ---------------------------------------------------------------------------- */

/*
 * One document's L2 in a directory (on-disk format: native/README.md):
 *   store.json   format "acre-l2", version, meta (the model fingerprint and span geometry), whether
 *                ingest finished, and what the host adds (document digest, policy)
 *   spans.bin    fixed-size records, one per span of S tokens (header, ids, K/V, representatives)
 *   pot.npz      the pot and the document as ingest left them (named arrays; numpy's .npz)
 *   resume.npz   while ingest runs: its last checkpoint (named arrays + an "info" JSON array)
 *   lock         the writer's exclusive flock
 * Crash safety: metadata and snapshots are replaced durably (temporary file, fsync, rename); on
 * open a trailing partial record is discarded, and so is a last record whose crc32 fails. A span
 * is served only if it passes its crc32. Every refusal is ACRE_ERR_STORE naming the file.
 * Input arrays are acre_arrays of exactly the dtype and shape each function names.
 */
#define ACRE_STORE_VERSION 1
#define ACRE_STORE_RECORD_HEADER_BYTES 28 /* "ACRS", span, n, start token, crc32, crc32 of the ids */

typedef struct acre_store acre_store;
typedef struct acre_snapshot acre_snapshot;

typedef struct acre_store_meta {
  const char *fingerprint; /* the model/bundle the store belongs to (owned by the store when read) */
  int32_t span_tokens;     /* S */
  int32_t layers, kv_heads, head_dim;
  int32_t probe_layers; /* Lp: layers the representative keys cover */
  int32_t reps;         /* R representative keys per span, probe layer and KV head */
  const char *codec;    /* "none" (ids and index only), "float16" or "int8" (K/V kept) */
} acre_store_meta;

/* The codecs by index ("none", "float16", "int8"); NULL past the last. */
const char *acre_store_codec_name(size_t index);
/* Bytes of one spans.bin record of a store with this meta (ACRE_ERR_STORE if the meta is unusable). */
acre_status acre_store_record_bytes(const acre_store_meta *meta, size_t *out);

/* What `dir` holds before anything is written there. *n_bytes = 0: nothing (no directory, an empty
 * one, or only a store's leftovers); else store.json as JSON text ("{}" if unreadable), written to
 * out[0..capacity) (ACRE_ERR_BUFFER_TOO_SMALL with *n_bytes set if it does not fit). A file, or a
 * directory holding other files, is ACRE_ERR_STORE. */
acre_status acre_store_peek(const char *dir, char *out, size_t capacity, size_t *n_bytes);

/* A new, empty store in `dir` (created if missing; a store there is replaced), locked for writing.
 * document_sha256 (may be NULL) names the document from the start. */
acre_status acre_store_create(const char *dir, const acre_store_meta *meta, const char *document_sha256,
                              acre_store **out);
/* Open a store; fingerprint NULL accepts any model's. writable: lock it and allow appends. */
acre_status acre_store_open(const char *dir, const char *fingerprint, int writable, acre_store **out);
void acre_store_free(acre_store *store); /* releases the lock */

acre_status acre_store_get_meta(const acre_store *store, acre_store_meta *out);
/* store.json as it stands (owned by the store, valid until the next call on it). */
/* The store's directory as it was opened or created (owned by the store). */
const char *acre_store_dir(const acre_store *store);
const char *acre_store_info_json(const acre_store *store);
size_t acre_store_span_count(const acre_store *store);
acre_status acre_store_span(const acre_store *store, size_t span, int64_t *start, int32_t *n_tokens);
/* Bytes read from spans.bin for spans served (and the last record checked on open). */
uint64_t acre_store_bytes_read(const acre_store *store);
uint64_t acre_store_disk_bytes(const acre_store *store); /* size of spans.bin */

/* Append a span of n (1..S) tokens starting at document token `start`: tokens int32 [n], k and v
 * float32 [L, Hkv, n, D] (may be NULL with codec none), reps float32 [Lp, Hkv, R, D]. A failed write
 * leaves spans.bin as it was before the call. */
acre_status acre_store_append(acre_store *store, int64_t start, const acre_array *tokens, const acre_array *k,
                              const acre_array *v, const acre_array *reps);
/* A span as stored: its n token ids (int32) into tokens, its K/V decoded to float32 [L, Hkv, n, D]
 * into k and v. Buffers must be exactly those sizes. A span failing its crc32 is not served. */
acre_status acre_store_read(acre_store *store, size_t span, const acre_buffer *tokens, const acre_buffer *k,
                            const acre_buffer *v);
/* Only the span's ids (read and checked without its K/V). */
acre_status acre_store_read_tokens(acre_store *store, size_t span, const acre_buffer *tokens);
/* The representative keys of spans [first, first + count) as float16 [count, Lp, Hkv, R, D]. */
acre_status acre_store_read_reps(acre_store *store, size_t first, size_t count, const acre_buffer *out);

/* Mark the document complete: spans.bin is made durable, `arrays` saved as pot.npz, and `extra_json`
 * (a JSON object) merged into store.json with the document's token and span counts. */
acre_status acre_store_finish(acre_store *store, const acre_array *arrays, size_t n_arrays,
                              const char *extra_json);
/* Save what an interrupted ingest needs to continue: spans.bin is made durable first, then
 * `arrays` and `info_json` (a JSON object; the core adds "spans") replace the last checkpoint. */
acre_status acre_store_checkpoint(acre_store *store, const acre_array *arrays, size_t n_arrays,
                                  const char *info_json);
/* Keep the first `spans` spans (resume: what follows the checkpoint is written again). */
acre_status acre_store_truncate(acre_store *store, size_t spans);

/* The pot snapshot of a finished store (ACRE_ERR_STORE if ingest did not finish or it is corrupt). */
acre_status acre_store_load_pot(const acre_store *store, acre_snapshot **out);
/* The last checkpoint of an unfinished ingest; *out is NULL if there is none or it is unusable
 * (then ingest starts again from the beginning, which loses nothing but time). */
acre_status acre_store_load_checkpoint(const acre_store *store, acre_snapshot **out);
size_t acre_snapshot_count(const acre_snapshot *snapshot);
/* Array `index`; its name and data are owned by the snapshot. */
acre_status acre_snapshot_array(const acre_snapshot *snapshot, size_t index, acre_array *out);
/* A checkpoint's info as JSON text ("" for a pot snapshot); owned by the snapshot. */
const char *acre_snapshot_info_json(const acre_snapshot *snapshot);
void acre_snapshot_free(acre_snapshot *snapshot);

/* ---- span selection: the span index, BM25, which spans a question refills --------------------- */

/*
 * A question's spans are scored by (a) its attention on each span's L1 entries (the host sums it),
 * (b) its probe queries against the span index, (c) BM25 of its token ids against each span's; the
 * scores are combined, cut by their density, and the chosen spans placed in the pot's refill slots.
 * Scores are float64 and every sum runs sequentially, in the order stated, so results are the same
 * bits on every machine (exp is correctly rounded, not the platform's). NaN or inf where a finite
 * value is due, an empty input, or an id out of range is ACRE_ERR_INVALID_ARGUMENT naming it.
 */
#define ACRE_SPAN_INDEX_FANOUT 8 /* children per node of the span index's tree */
#define ACRE_BM25_K1 1.2
#define ACRE_BM25_B 0.75

/* A span's representative keys: keys float32 [Lp, Hkv, n, D] (its probe layers' keys, n >= 1) ->
 * out float32 [Lp, Hkv, R, D] (R = reps), per head the R keys of largest norm, largest first (ties:
 * the earlier key), repeated from the first when n < R. */
acre_status acre_representatives(const acre_array *keys, int32_t reps, const acre_buffer *out);

/* ActQKV's probe queries: of queries float32 [Lp, H, T, D] (T >= 1), the ceil(T * share) tokens (at
 * least 1) whose queries deviate most from the question's mean query (L2 norm summed over layers and
 * heads), and the last token, ascending, into picks[0..capacity) (T always suffices); share in (0, 1].
 * Too small: ACRE_ERR_BUFFER_TOO_SMALL with *n_picks set to the count needed. */
acre_status acre_probe_queries(const acre_array *queries, double share, int64_t *picks, size_t capacity,
                               size_t *n_picks);

typedef struct acre_span_index acre_span_index;

/* A span index over reps float16 [N, Lp, Hkv, R, D] (N >= 1, finite; copied: the index owns its
 * entries), and its tree of coarser nodes (each keeps the R largest-norm keys of its fanout children). */
acre_status acre_span_index_new(const acre_array *reps, int32_t fanout, acre_span_index **out);
/* The index of a store's spans, their representatives read from spans.bin into the index. */
acre_status acre_span_index_from_store(acre_store *store, int32_t fanout, acre_span_index **out);
void acre_span_index_free(acre_span_index *index);
size_t acre_span_index_span_count(const acre_span_index *index);
size_t acre_span_index_bytes(const acre_span_index *index); /* the entries of every level */
/* Its entries' shape: dims = {Lp, Hkv, R, D}. */
acre_status acre_span_index_shape(const acre_span_index *index, int64_t dims[4]);
/* Levels of the tree: 1 for the spans alone; nodes of a level (0: the spans; 0 past the last). */
size_t acre_span_index_levels(const acre_span_index *index);
size_t acre_span_index_level_size(const acre_span_index *index, size_t level);
/* A level's entries as float16 [nodes, Lp, Hkv, R, D] into out. */
acre_status acre_span_index_level_reps(const acre_span_index *index, size_t level, const acre_buffer *out);

/* The score of every span into scores[n_scores] (n_scores = the span count): for each retrieval head
 * (heads[2i]: its index into the probe layers, heads[2i+1]: its query head; n_heads >= 1) a node's best
 * dot product of any query with any of its keys, standardised over the candidate nodes, summed over the
 * heads in the order given. queries float32 [Lp, H, T, D], H a multiple of Hkv, T >= 1. With tree, the
 * search runs top-down keeping `beam` nodes per level and spans it did not reach score -inf; without,
 * every span is scored. */
acre_status acre_span_index_scores(const acre_span_index *index, const acre_array *queries,
                                   const int32_t *heads, size_t n_heads, int32_t beam, int tree,
                                   double *scores, size_t n_scores);

typedef struct acre_lexical acre_lexical;

/* BM25 over the document's token ids (n_ids >= 1, each >= 0) cut into spans of span_tokens, the last
 * possibly shorter: one (token, span, count) posting per distinct token of each span. */
acre_status acre_lexical_new(const int32_t *document_ids, size_t n_ids, int32_t span_tokens,
                             acre_lexical **out);
void acre_lexical_free(acre_lexical *lexical);
size_t acre_lexical_span_count(const acre_lexical *lexical);
size_t acre_lexical_bytes(const acre_lexical *lexical);
/* BM25 of every span into scores[n_scores] (n_scores = the span count) for the distinct query ids
 * (ids >= 0; ids the document lacks add 0; no ids: all 0). */
acre_status acre_lexical_scores(const acre_lexical *lexical, const int32_t *query_ids, size_t n_query,
                                double *scores, size_t n_scores);

/* (x - mean) / std over x[n] (population std; all 0 when x is constant) into out[n]. */
acre_status acre_standardised(const double *x, size_t n, double *out);

/* One score per span (n >= 1) into out[n]: the mean of the parts given, each NULL or n values (not all
 * NULL), summed in this order: (a) attention, normalised to sum 1; (b) index_z, the span index's
 * scores (-inf where not reached, at least one finite), as a softmax; (c) lexical BM25 scores,
 * standardised, as a softmax. */
acre_status acre_combine_scores(const double *attention, const double *index_z, const double *lexical,
                                size_t n, double *out);

/* The spans a question is about, best first, into cores (n_cores set): the fewest of the positive-scored
 * spans (ranked by score, ties: lower index first) whose running sum reaches `mass` (0, 1] of their total,
 * at least min_spans, at most budget (>= 0). cores holds min(budget, n) values. */
acre_status acre_core_spans(const double *scores, size_t n, int32_t budget, double mass, int32_t min_spans,
                            int64_t *cores, size_t *n_cores);

/* The spans to refill, ascending, into chosen (n_chosen set), and what the question is about into about
 * (n_about set): the core spans each bring their neighbours (1 before, 1 after, 2 before, ... up to
 * `neighbors` on each side) while the budget lasts; up to half the budget goes first to the `carried`
 * spans (those the turn before in a dialogue was about; ids that are no span are ignored), what they
 * leave to more neighbours. About: the cores and carried spans refilled. Each output holds
 * min(budget, n) values. */
acre_status acre_choose_spans(const double *scores, size_t n, int32_t budget, double mass, int32_t min_spans,
                              int32_t neighbors, const int64_t *carried, size_t n_carried, int64_t *chosen,
                              size_t *n_chosen, int64_t *about, size_t *n_about);

/* Where a refill goes: the tokens of `spans` (distinct, each < n_store_spans; span i holds document
 * tokens starts[i] .. starts[i] + lengths[i]) in document order, less those resident in the pot (sinks,
 * recent window), into tokens, and the first free slots in the order given into slots; *n_placed set.
 * Both outputs hold n_free values; more tokens than free slots is refused. */
acre_status acre_refill_placement(const int64_t *spans, size_t n_spans, const int64_t *starts,
                                  const int32_t *lengths, size_t n_store_spans, const int64_t *resident,
                                  size_t n_resident, const int64_t *free_slots, size_t n_free, int64_t *slots,
                                  int64_t *tokens, size_t *n_placed);

/* ---- the pot ------------------------------------------------------------------------------ */

/*
 * The bounded RAM key/value buffer the step program attends to, allocated once at capacity and never
 * reallocated: k and v [L, Hkv, P, D] (float32 or float16), and per slot its position (int64, where its
 * key is rotated at), mask (bool: visible to the step program), kind (int8, acre_slot_kind) and document
 * token (int64, -1 if none). The core keeps each key rotated (RoPE, the half-split layout) at its slot's
 * position: a slot whose position changes is re-rotated by the change, with float64 angles, cos and sin
 * rounded to float32 and float32 products (numpy's float32 math, bit for bit). Slots given to a call are
 * each in [0, P) and, where the call writes, distinct; positions are in [0, ACRE_POT_MAX_POSITION].
 * A bad input is ACRE_ERR_INVALID_ARGUMENT naming it, and leaves the pot unchanged.
 */
typedef enum acre_slot_kind {
  ACRE_SLOT_FREE = 0,
  ACRE_SLOT_SINK = 1,
  ACRE_SLOT_L1 = 2,
  ACRE_SLOT_REFILL = 3,
  ACRE_SLOT_RECENT = 4,
  ACRE_SLOT_QUESTION = 5 /* the question and the answer being decoded */
} acre_slot_kind;

#define ACRE_POT_MAX_POSITION 2147483647 /* beyond any model's window; float64 angles stay exact */
#define ACRE_POT_ARRAYS 6                /* k, v, positions, mask, kind, token: the snapshot's names */

typedef struct acre_pot acre_pot;

/* A zeroed pot, every slot free and hidden. kv_dtype float32 or float16; inv_freq: the model's RoPE
 * frequencies, head_dim / 2 finite values (copied). */
acre_status acre_pot_new(int32_t layers, int32_t kv_heads, int32_t capacity, int32_t head_dim,
                         acre_dtype kv_dtype, const double *inv_freq, size_t n_freq, acre_pot **out);
void acre_pot_free(acre_pot *pot);
size_t acre_pot_capacity(const acre_pot *pot);
size_t acre_pot_bytes(const acre_pot *pot); /* of all six arrays */
size_t acre_pot_used(const acre_pot *pot);  /* visible slots */

/* Array `index` (0..ACRE_POT_ARRAYS-1: k, v, positions, mask, kind, token) over the pot's own memory:
 * no copy, valid while the pot lives (the engine takes k, v and mask as step inputs). A host reads it
 * and changes the pot through the functions below. */
acre_status acre_pot_array(const acre_pot *pot, size_t index, acre_array *out);

/* Rows k and v, each of the pot's dtype [L, Hkv, n, D], into slots[n], visible, of `kind` (not FREE),
 * their keys rotated at positions[n] (NULL: 0, un-rotated), from document tokens[n] (NULL: -1). */
acre_status acre_pot_write(acre_pot *pot, const int64_t *slots, size_t n, const acre_array *k,
                           const acre_array *v, const int64_t *positions, acre_slot_kind kind,
                           const int64_t *tokens);
/* Free slots[n] (kind FREE, hidden, token -1; their K/V stay as they were, unseen). */
acre_status acre_pot_clear(acre_pot *pot, const int64_t *slots, size_t n);
/* Show (visible != 0) or hide slots[n] from the step program; nothing else changes. */
acre_status acre_pot_show(acre_pot *pot, const int64_t *slots, size_t n, int visible);
/* New positions[n] for slots[n]; each key whose position changes is re-rotated by the change. */
acre_status acre_pot_move(acre_pot *pot, const int64_t *slots, size_t n, const int64_t *positions);
/* The visible slots of kinds[n_kinds] (n_kinds >= 1) get positions 0, 1, ... in the order of their
 * document tokens (stable: equal tokens keep slot order), moved as acre_pot_move moves them; the next
 * free position (their count) into *next_position. */
acre_status acre_pot_compact(acre_pot *pot, const acre_slot_kind *kinds, size_t n_kinds,
                             int64_t *next_position);
/* The keys of layers[n_layers] (n_layers >= 1) and slots[n] as at position 0 (comparable across
 * positions), float32 [n_layers, Hkv, n, D] into out. */
acre_status acre_pot_unrotated(const acre_pot *pot, const int32_t *layers, size_t n_layers,
                               const int64_t *slots, size_t n, const acre_buffer *out);
/* Keys not in the pot, float32 or float16 [layers, Hkv, n, D] (Hkv and D the pot's), rotated at
 * positions[n], as at position 0 with the pot's frequencies: float32 of the same shape into out (the
 * L2 store keeps keys so). */
acre_status acre_pot_unrotate(const acre_pot *pot, const acre_array *keys, const int64_t *positions,
                              const acre_buffer *out);
/* The free slots (kind FREE) of the region [first, first + count), ascending, into slots[0..capacity)
 * (count always suffices); *n_slots set. Too small: ACRE_ERR_BUFFER_TOO_SMALL, *n_slots the count. */
acre_status acre_pot_free_slots(const acre_pot *pot, int64_t first, int64_t count, int64_t *slots,
                                size_t capacity, size_t *n_slots);
/* The slots of kinds[n_kinds] (n_kinds >= 1, FREE allowed), ascending, into slots[0..capacity) (the
 * pot's capacity always suffices); *n_slots set. Too small: ACRE_ERR_BUFFER_TOO_SMALL. */
acre_status acre_pot_slots_of(const acre_pot *pot, const acre_slot_kind *kinds, size_t n_kinds,
                              int64_t *slots, size_t capacity, size_t *n_slots);
/* Put a snapshot back (a pot.npz or checkpoint): arrays named as acre_pot_array names them (others are
 * ignored), each of exactly the pot's dtype and shape, with valid slot entries; all are checked before
 * anything is copied. */
acre_status acre_pot_restore(acre_pot *pot, const acre_array *arrays, size_t n_arrays);

/* ---- policies ------------------------------------------------------------------------------ */

/*
 * What the pot keeps while a document streams in, and what it refills for a question:
 *   full       every token in the pot (the reference; the document must fit)
 *   streaming  attention sinks + the most recent tokens
 *   infinipot  sinks + L1 distilled by CCD (catalyst attention and novelty) + recent; no refill
 *   acre       infinipot's L1, plus query-guided refill of whole spans from L2 (the default)
 * Switches (a JSON object) turn off parts of acre's span scoring (use_attention, use_index, use_probes,
 * use_tree, use_lexical: booleans) or change how chosen spans come back (refill_mode "reencode" or
 * "reuse", neighbors and min_spans: integers >= 0, answer_recent: boolean).
 */
typedef struct acre_policy acre_policy;

/* The policies by index (full, streaming, infinipot, acre); NULL past the last. */
const char *acre_policy_name(size_t index);
/* The catalyst prompt whose attention rates what L1 keeps (UTF-8, static). */
const char *acre_catalyst(void);
/* The named policy with switches_json (NULL or a JSON object) turned; ACRE_ERR_INVALID_ARGUMENT for an
 * unknown name or switch, a value of the wrong type, or a combination that cannot choose spans. */
acre_status acre_policy_new(const char *name, const char *switches_json, acre_policy **out);
void acre_policy_free(acre_policy *policy);
/* Every field of the policy as a JSON object (owned by the policy). */
const char *acre_policy_json(const acre_policy *policy);

/* Slots per region of the pot; the regions partition it in this order (a full policy shares one pool). */
typedef struct acre_layout {
  int64_t sink, l1, recent, refill, question;
} acre_layout;
/* The layout of a pot of `capacity` slots, prefill chunk `chunk` and spans of `span` tokens;
 * ACRE_ERR_INVALID_ARGUMENT (saying what does not fit) for a pot too small for the policy. */
acre_status acre_policy_layout(const acre_policy *policy, int64_t capacity, int64_t chunk, int64_t span,
                               acre_layout *out);

/* ---- session ------------------------------------------------------------------------------ */

/*
 * One document in the pot and its L2 store: ingest (chunked prefill; sinks, the recent window, and what
 * leaves it distilled into L1 or dropped, as the policy says; every span to the store), reopen, and
 * resume of an interrupted ingest from its last checkpoint. The session borrows its bundle, pot,
 * tokenizer and engine: they must outlive it. It owns its store.
 */
typedef struct acre_session acre_session;

typedef struct acre_session_config {
  int32_t span_tokens;             /* S, tokens per L2 span (64) */
  int32_t reps;                    /* R, representative keys per span, probe layer and KV head (8) */
  const char *codec;               /* NULL: float16 when the refill reuses K/V, else "none" */
  int64_t checkpoint_tokens;       /* an ingest saves where it is every this many tokens (4096) */
  const char *fingerprint;         /* the bundle's (model and programs); a store serves only it */
  const acre_tokenizer *tokenizer; /* NULL: the session opens the bundle's (for the catalyst) */
} acre_session_config;

acre_status acre_session_new(const acre_bundle *bundle, acre_pot *pot, const acre_policy *policy,
                             const acre_session_config *config, acre_session **out);
void acre_session_free(acre_session *session);
/* The engine its steps run on (NULL: none; a step then fails). */
acre_status acre_session_set_engine(acre_session *session, acre_engine *engine);

/* The document: prompt ids, and for sources its UTF-8 text and each id's character range
 * (offsets[2i], offsets[2i+1]; -1 for ids not in the text), or text NULL. */
typedef struct acre_document {
  const int32_t *ids;
  size_t n_ids;
  const char *text;
  size_t text_bytes;
  const int32_t *offsets; /* [n_ids][2] */
} acre_document;

/* Called after each chunk of an ingest; non-zero stops it with ACRE_ERR_CANCELLED (a store keeps its
 * last checkpoint, so an ingest again resumes there). */
typedef int32_t (*acre_progress_fn)(void *user, int64_t done, int64_t total);

/* Ingest a document, replacing the session's earlier one; *n_tokens its length. With a refilling policy
 * its L2 goes to store_dir (a temporary directory, removed with the session, if NULL). With `resume`, a
 * store that holds this document finished is reopened as it is, an unfinished one continues from its
 * last checkpoint. A store holding another document (or another bundle's) is refused with ACRE_ERR_STORE
 * unless `replace`, which ingests anew whatever it holds. Bad ids are refused before anything changes. */
acre_status acre_session_ingest(acre_session *session, const acre_document *document, const char *store_dir,
                                int resume, int replace, acre_progress_fn progress, void *user,
                                int64_t *n_tokens);
/* Reopen a document ingested earlier (by any process) with this bundle and policy; no re-ingest. */
acre_status acre_session_open_document(acre_session *session, const char *store_dir, int64_t *n_tokens);
/* A new handle sharing the session's store (*out NULL if it has none); free it with acre_store_free. */
acre_status acre_session_store(const acre_session *session, acre_store **out);
/* The session lets go of its store (the writer's lock goes with the last handle). */
void acre_session_close_store(acre_session *session);
/* The token the last ingest resumed at (its length when it reopened a finished store), -1 if none. */
int64_t acre_session_resumed_from(const acre_session *session);
/* Changes whenever the pot is reset for another document (an ingest that began, a reopen). */
uint64_t acre_session_epoch(const acre_session *session);
/* The resolved policy (JSON, owned by the session), its layout, and a region's slots [first, first +
 * count) (count 0: no such region; a full policy's recent window and question share the pot). */
const char *acre_session_policy_json(const acre_session *session);
acre_status acre_session_layout(const acre_session *session, acre_layout *out);
acre_status acre_session_region(const acre_session *session, acre_slot_kind kind, int64_t *first,
                                int64_t *count);
/* The codec of the stores it writes ("none", "float16", "int8"; owned by the session). */
const char *acre_session_codec(const acre_session *session);
/* The document: ids int32 [n], and when it came with text, text uint8 [bytes] and offsets int32 [n, 2]
 * (else their data NULL), over the session's memory until its next ingest or reopen. */
acre_status acre_session_document(const acre_session *session, acre_array *ids, acre_array *text,
                                  acre_array *offsets);
/* The visible document slots get positions 0, 1, ... in document order; the next free position. */
acre_status acre_session_compact(acre_session *session, int64_t *next_position);
/* One step of ids[n] (1 <= n <= chunk) at positions start, start + 1, ... over the pot; outputs[n_outputs]
 * (the step's outputs in manifest order, n_outputs = their count) over the session's memory until its
 * next step. A window overrun is ACRE_ERR_INVALID_ARGUMENT. */
acre_status acre_session_step(acre_session *session, const int32_t *ids, size_t n, int64_t start,
                              acre_array *outputs, size_t n_outputs);

/* Tokens of the chat template (BM25 leaves them out of a question: they match the document's template). */
acre_status acre_session_set_template_ids(acre_session *session, const int32_t *ids, size_t n);

/* The tokens that end an answer (the bundle's eos_token_ids until set). */
acre_status acre_session_set_stop_ids(acre_session *session, const int32_t *ids, size_t n);

/* How an answer is decoded: at most max_new_tokens (>= 0), greedy (temperature <= 0) or sampled from the
 * top_p nucleus with numpy's default_rng(seed) stream (has_seed 0: fresh entropy); stop_at_eos 0 decodes
 * max_new_tokens whatever comes. */
typedef struct acre_decoding {
  int32_t max_new_tokens;
  double temperature, top_p;
  int has_seed;
  uint64_t seed;
  int stop_at_eos;
} acre_decoding;

/* Prefill question[n] after the document as ingest left it: spans are chosen with selection[n_selection]
 * (n_selection 0: the question), refilled with carried[n_carried] (spans a dialogue's turn before was
 * about) while there is room, and the question prefilled again; then acre_session_next decodes. No
 * document, bad ids or a question longer than its region is ACRE_ERR_INVALID_ARGUMENT. */
acre_status acre_session_ask(acre_session *session, const int32_t *question, size_t n,
                             const int32_t *selection, size_t n_selection, const int64_t *carried,
                             size_t n_carried, const acre_decoding *decoding);
/* The next answer token into *token; -1 when the answer is done (a stop token, max_new_tokens, or the
 * question region full). */
acre_status acre_session_next(acre_session *session, int32_t *token);

/* What the last question chose and cost, over the session's memory until its next question. */
typedef struct acre_question {
  const int64_t *spans; /* refilled, in document order */
  size_t n_spans;
  const int64_t *cores; /* what it is about: its core spans and the carried refilled */
  size_t n_cores;
  const double *span_scores; /* one per span; none when nothing was scored */
  size_t n_scores;
  const int32_t *prompt_ids; /* the prompt as the model saw it: the shown document tokens, the question */
  size_t n_prompt;
  uint64_t bytes_read; /* from spans.bin */
  double read_s;       /* wall time reading and checking the chosen spans */
} acre_question;
acre_status acre_session_last(const acre_session *session, acre_question *out);
/* Bytes of the span index the session made (0 before its first question). */
size_t acre_session_index_bytes(const acre_session *session);

/* ---- sampling ---------------------------------------------------------------------------- */

/* numpy's default_rng: PCG64 seeded through SeedSequence (has_seed 0: fresh entropy). */
typedef struct acre_rng acre_rng;
acre_status acre_rng_new(int has_seed, uint64_t seed, acre_rng **out);
void acre_rng_free(acre_rng *rng);
/* [0, 1) from 53 bits, as Generator.random(). */
double acre_rng_uniform(acre_rng *rng);
/* The next token of logits[n] (n >= 1): greedy for temperature <= 0, else softmax(logits / temperature)
 * cut to the fewest most probable tokens whose mass reaches top_p (at least one), one drawn by rng. */
acre_status acre_sample(const float *logits, size_t n, double temperature, double top_p, acre_rng *rng,
                        int32_t *token);

#ifdef __cplusplus
}
#endif

#endif /* ACRE_H */
