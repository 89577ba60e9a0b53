# Sourced by cross/build and cross/test: chooses the Rust toolchain for a
# Pi target and tells cargo how to link and run its binaries. Expects
# $target (a Rust target triple) to be set.
#
# rustup's standard library for the target is used when rustup has it;
# otherwise Debian's rustc-web, whose sysroot (/usr) holds the arm64 and
# armhf standard libraries from libstd-rust-web-dev. rustup's rustc stays
# first on PATH, so RUSTC must name Debian's compiler explicitly; this is
# set here only, so that clippy and rustfmt keep running with rustup.

case "$target" in
    aarch64-unknown-linux-gnu)
        gnu=aarch64-linux-gnu
        qemu=qemu-aarch64-static
        # Pi 4's core: tract picks its kernels by the CPU it finds.
        qemu_cpu=cortex-a72
        ;;
    armv7-unknown-linux-gnueabihf)
        gnu=arm-linux-gnueabihf
        qemu=qemu-arm-static
        # Pi 2 v1.2, Pi 3 and Zero 2 W in 32-bit mode share the A53's
        # instruction set; qemu-arm models the A15 closest to it.
        qemu_cpu=cortex-a15
        ;;
    *)
        echo "cross: error: unsupported target ${target@Q}" \
            "(aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf)" >&2
        exit 2
        ;;
esac

if command -v rustup >/dev/null &&
    rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    toolchain="rustup (target $target installed)"
    unset RUSTC RUSTDOC
else
    toolchain="Debian rustc-web (/usr/bin/rustc)"
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    if [[ ! -x $RUSTC ]]; then
        echo "cross: error: $RUSTC is missing: run cross/setup" >&2
        exit 2
    fi
fi

# Cargo's per-target settings, as environment variables so that native
# builds in the same clone are untouched.
target_env=$(echo "$target" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${target_env}_LINKER=$gnu-gcc"
# No "-L /usr/$gnu": with libc6:arm64 installed, qemu would then mix the
# cross package's loader with the multiarch glibc, and every new thread
# hangs silently (README, "Building for the Pi").
runner="$qemu -cpu $qemu_cpu"
export "CARGO_TARGET_${target_env}_RUNNER=$runner"
# ring and other C code built by the cc crate for the target.
export "CC_${target//-/_}=$gnu-gcc" "AR_${target//-/_}=$gnu-ar"

# Cross builds get their own folder unless told otherwise: the host-side
# build scripts of Debian's and rustup's compilers would otherwise share
# target/release and rebuild each other's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cross}"

echo "== toolchain: $toolchain"
"${RUSTC:-rustc}" -V
cargo -V
