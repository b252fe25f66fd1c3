/*
 * kgen_insn_count.c - QEMU 7.2 TCG plugin (plugin API version 1): exact
 * instruction counts for kgen test programs.
 *
 * Build:  gcc -O2 -shared -fPIC -fvisibility=hidden -o kgen_insn_count.so kgen_insn_count.c
 * Use:    qemu-system-arm ... -plugin ./kgen_insn_count.so,out=FILE,begin=ADDR,end=ADDR
 *
 * Method
 *   - Every translated instruction gets an inline 64-bit add on its own
 *     per-PC counter, so counts are exact (conditional instructions whose
 *     condition fails and IT instructions count too).
 *   - One callback per executed translation block (TB) detects taken control
 *     transfers: when a TB starts anywhere but at the fall-through address of
 *     the previously executed TB, the last instruction of that TB is counted
 *     as taken.
 *   - Regions: a TB that starts at the `begin` marker PC opens a region, one
 *     that starts at `end` closes it. The marker's own instruction (its `bx lr`)
 *     is counted by that callback instead of inline, after the region logic, so
 *     the region is exactly [first insn of begin marker, call of end marker],
 *     independently of the order QEMU runs TB callbacks and inline ops in.
 *     The per-PC counts of a region are the difference of all counters between
 *     its opening and its closing; they sum to the region's total.
 *
 * Output (text, one record per line, written at exit):
 *   kgen_insn_count 1
 *   total <N>                       all instructions of the run
 *   pc <hexaddr> <count> <taken>    whole run, every executed PC
 *   region <i> <N>                  closed regions, in order
 *   rpc <i> <hexaddr> <count> <taken>   per-PC counts inside region i
 *   error <text>                    misuse (nested begin, end without begin, ...)
 *   end
 *
 * QEMU ships no qemu-plugin.h on Debian, so the few API v1 declarations this
 * file needs are written out below.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ QEMU plugin API v1 */

#define KGEN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;

typedef struct qemu_info_t {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS,
    QEMU_PLUGIN_CB_R_REGS,
    QEMU_PLUGIN_CB_RW_REGS,
};

enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64,
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

KGEN_EXPORT int qemu_plugin_version = 1;

/* ------------------------------------------------------------- per-PC table */

typedef struct {
    uint64_t count;
    uint64_t taken;
    uint64_t pc;
} pc_entry;

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)

static pc_entry **chunks;          /* entries never move: inline ops point into them */
static size_t n_chunks, n_entries;
static pc_entry **table;           /* open addressing, pc -> entry */
static size_t table_cap;

typedef struct {
    uint64_t start;                /* first insn address */
    uint64_t fallthrough;          /* address after the last insn */
    pc_entry *last;                /* entry of the last insn */
    pc_entry *marker;              /* begin/end marker entry, counted in the callback */
    int kind;                      /* 0 plain, 1 begin marker, 2 end marker */
} tb_info;

typedef struct {
    uint64_t total;
    size_t n;
    uint64_t *rows;                /* n * (pc, count, taken) */
} region_rec;

static uint64_t begin_pc = UINT64_MAX, end_pc = UINT64_MAX;
static char *out_path;
static const tb_info *prev_tb;
static bool in_region;
static size_t snap_n;
static uint64_t *snap_count, *snap_taken;
static size_t snap_cap;
static region_rec *regions;
static size_t n_regions, regions_cap;
static char errors[4096];

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "kgen_insn_count: out of memory\n");
        abort();
    }
    return q;
}

static size_t hash_pc(uint64_t pc, size_t cap)
{
    return (size_t)((pc >> 1) * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
}

static pc_entry *entry_at(size_t i)
{
    return &chunks[i >> CHUNK_BITS][i & (CHUNK_SIZE - 1)];
}

static void table_insert(pc_entry *e)
{
    size_t h = hash_pc(e->pc, table_cap);
    while (table[h]) {
        h = (h + 1) & (table_cap - 1);
    }
    table[h] = e;
}

static pc_entry *get_entry(uint64_t pc)
{
    if (table_cap == 0 || 2 * (n_entries + 1) > table_cap) {
        size_t i, cap = table_cap ? 2 * table_cap : 4096;
        free(table);
        table = xrealloc(NULL, cap * sizeof *table);
        memset(table, 0, cap * sizeof *table);
        table_cap = cap;
        for (i = 0; i < n_entries; i++) {
            table_insert(entry_at(i));
        }
    }
    size_t h = hash_pc(pc, table_cap);
    while (table[h]) {
        if (table[h]->pc == pc) {
            return table[h];
        }
        h = (h + 1) & (table_cap - 1);
    }
    if ((n_entries >> CHUNK_BITS) >= n_chunks) {
        chunks = xrealloc(chunks, (n_chunks + 1) * sizeof *chunks);
        chunks[n_chunks] = xrealloc(NULL, CHUNK_SIZE * sizeof(pc_entry));
        memset(chunks[n_chunks], 0, CHUNK_SIZE * sizeof(pc_entry));
        n_chunks++;
    }
    pc_entry *e = entry_at(n_entries++);
    e->pc = pc;
    table[h] = e;
    return e;
}

static void add_error(const char *msg)
{
    size_t len = strlen(errors);
    if (len + strlen(msg) + 2 < sizeof errors) {
        strcat(errors, msg);
        strcat(errors, "\n");
    }
}

/* ---------------------------------------------------------------- regions */

static void region_open(void)
{
    size_t i;
    if (in_region) {
        add_error("nested kgen_region_begin (region restarted)");
    }
    if (n_entries > snap_cap) {
        snap_cap = n_entries + 1024;
        snap_count = xrealloc(snap_count, snap_cap * sizeof *snap_count);
        snap_taken = xrealloc(snap_taken, snap_cap * sizeof *snap_taken);
    }
    for (i = 0; i < n_entries; i++) {
        pc_entry *e = entry_at(i);
        snap_count[i] = e->count;
        snap_taken[i] = e->taken;
    }
    snap_n = n_entries;
    in_region = true;
}

static void region_close(void)
{
    size_t i, n = 0;
    region_rec r;
    if (!in_region) {
        add_error("kgen_region_end without kgen_region_begin (ignored)");
        return;
    }
    in_region = false;
    memset(&r, 0, sizeof r);
    for (i = 0; i < n_entries; i++) {
        pc_entry *e = entry_at(i);
        uint64_t c = e->count - (i < snap_n ? snap_count[i] : 0);
        uint64_t t = e->taken - (i < snap_n ? snap_taken[i] : 0);
        if (c || t) {
            n++;
        }
    }
    r.rows = xrealloc(NULL, 3 * n * sizeof *r.rows);
    for (i = 0; i < n_entries; i++) {
        pc_entry *e = entry_at(i);
        uint64_t c = e->count - (i < snap_n ? snap_count[i] : 0);
        uint64_t t = e->taken - (i < snap_n ? snap_taken[i] : 0);
        if (c || t) {
            r.rows[3 * r.n] = e->pc;
            r.rows[3 * r.n + 1] = c;
            r.rows[3 * r.n + 2] = t;
            r.n++;
            r.total += c;
        }
    }
    if (n_regions == regions_cap) {
        regions_cap = regions_cap ? 2 * regions_cap : 16;
        regions = xrealloc(regions, regions_cap * sizeof *regions);
    }
    regions[n_regions++] = r;
}

/* -------------------------------------------------------------- callbacks */

static void tb_exec(unsigned int vcpu_index, void *userdata)
{
    const tb_info *tb = userdata;
    (void)vcpu_index;
    if (prev_tb && prev_tb->fallthrough != tb->start) {
        prev_tb->last->taken++;
    }
    prev_tb = tb;
    if (tb->kind == 1) {
        region_open();
        tb->marker->count++;
    } else if (tb->kind == 2) {
        region_close();
        tb->marker->count++;
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    tb_info *info;
    (void)id;
    if (n == 0) {
        return;
    }
    info = xrealloc(NULL, sizeof *info);
    memset(info, 0, sizeof *info);
    info->start = qemu_plugin_tb_vaddr(tb);
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        pc_entry *e = get_entry(pc);
        if (i == 0 && (pc == begin_pc || pc == end_pc)) {
            info->kind = pc == begin_pc ? 1 : 2;
            info->marker = e;
        } else {
            if (pc == begin_pc || pc == end_pc) {
                add_error("marker instruction inside a translation block (not counted as a marker)");
            }
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &e->count, 1);
        }
        if (i == n - 1) {
            info->last = e;
            info->fallthrough = pc + qemu_plugin_insn_size(insn);
        }
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, info);
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    size_t i, j;
    uint64_t total = 0;
    FILE *f;
    (void)id;
    (void)userdata;
    if (in_region) {
        add_error("kgen_region_begin without kgen_region_end at exit (region dropped)");
    }
    f = out_path ? fopen(out_path, "w") : NULL;
    if (!f) {
        qemu_plugin_outs("kgen_insn_count: cannot open output file\n");
        return;
    }
    for (i = 0; i < n_entries; i++) {
        total += entry_at(i)->count;
    }
    fprintf(f, "kgen_insn_count 1\ntotal %" PRIu64 "\n", total);
    for (i = 0; i < n_entries; i++) {
        pc_entry *e = entry_at(i);
        if (e->count || e->taken) {
            fprintf(f, "pc %" PRIx64 " %" PRIu64 " %" PRIu64 "\n", e->pc, e->count, e->taken);
        }
    }
    for (i = 0; i < n_regions; i++) {
        fprintf(f, "region %zu %" PRIu64 "\n", i, regions[i].total);
        for (j = 0; j < regions[i].n; j++) {
            const uint64_t *r = &regions[i].rows[3 * j];
            fprintf(f, "rpc %zu %" PRIx64 " %" PRIu64 " %" PRIu64 "\n", i, r[0], r[1], r[2]);
        }
    }
    if (errors[0]) {
        char *line = errors, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            fprintf(f, "error %s\n", line);
            line = nl + 1;
        }
    }
    fprintf(f, "end\n");
    fclose(f);
}

static bool parse_addr(const char *s, uint64_t *out)
{
    char *endp;
    unsigned long long v = strtoull(s, &endp, 0);
    if (*s == '\0' || *endp != '\0') {
        return false;
    }
    *out = (uint64_t)v & ~(uint64_t)1;  /* drop the Thumb bit */
    return true;
}

KGEN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "out=", 4) == 0) {
            out_path = strdup(a + 4);
        } else if (strncmp(a, "begin=", 6) == 0) {
            if (!parse_addr(a + 6, &begin_pc)) {
                fprintf(stderr, "kgen_insn_count: bad begin address '%s'\n", a + 6);
                return -1;
            }
        } else if (strncmp(a, "end=", 4) == 0) {
            if (!parse_addr(a + 4, &end_pc)) {
                fprintf(stderr, "kgen_insn_count: bad end address '%s'\n", a + 4);
                return -1;
            }
        } else {
            fprintf(stderr, "kgen_insn_count: unknown argument '%s'\n", a);
            return -1;
        }
    }
    if (!out_path) {
        fprintf(stderr, "kgen_insn_count: missing out=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
