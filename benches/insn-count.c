/*
 * A qemu-user TCG plugin that counts the guest instructions executed and,
 * at every marker system call the guest makes, writes the running total
 * to a file. benches/qemu-count loads it to measure doorman's networks and
 * pipeline on the Pi's CPU in instructions, which unlike emulated seconds
 * are stable from run to run.
 *
 *   qemu-aarch64 -plugin ./insn-count.so,out=FILE,mark=173 PROGRAM ...
 *
 * out:  the file that holds the total (one decimal number, rewritten at
 *       each marker, before the guest's system call runs)
 * mark: the guest's system call number that acts as marker (getppid: 173
 *       on aarch64, 64 on 32-bit ARM); the bench calls it between cases
 *       and then reads the file.
 *
 * Written against the plugin interface of QEMU 7.2 (Debian 12's
 * qemu-user): only the functions declared below are used, so no QEMU
 * header is needed to build it. The counter is a plain inline add per
 * translated block: exact for a single-threaded guest, which the bench is.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t plugin_id;
struct qemu_plugin_tb;
struct qemu_info_t;

enum { INLINE_ADD_U64 = 0 };

typedef void (*tb_trans_cb)(plugin_id id, struct qemu_plugin_tb *tb);
typedef void (*syscall_cb)(plugin_id id, unsigned int vcpu, int64_t num,
                           uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                           uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);

extern void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id id, tb_trans_cb cb);
extern void qemu_plugin_register_vcpu_syscall_cb(plugin_id id, syscall_cb cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                                     int op, void *ptr,
                                                     uint64_t imm);

/* The oldest interface version whose calls above are unchanged. */
EXPORT int qemu_plugin_version = 1;

static uint64_t executed;
static int64_t marker = -1;
static const char *out;

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(plugin_id id, unsigned int vcpu, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a1; (void)a2; (void)a3; (void)a4;
    (void)a5; (void)a6; (void)a7; (void)a8;
    if (num != marker) {
        return;
    }
    FILE *f = fopen(out, "w");
    if (f == NULL || fprintf(f, "%" PRIu64 "\n", executed) < 0 || fclose(f) != 0) {
        fprintf(stderr, "insn-count: cannot write %s\n", out);
        exit(1);
    }
}

EXPORT int qemu_plugin_install(plugin_id id, const struct qemu_info_t *info,
                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out = argv[i] + 4;
        } else if (strncmp(argv[i], "mark=", 5) == 0) {
            marker = strtoll(argv[i] + 5, NULL, 10);
        } else {
            fprintf(stderr, "insn-count: unknown argument %s (out=, mark=)\n", argv[i]);
            return -1;
        }
    }
    if (out == NULL || marker < 0) {
        fprintf(stderr, "insn-count: both out=FILE and mark=SYSCALL are needed\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    return 0;
}
