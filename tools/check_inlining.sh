#!/usr/bin/env bash
# Fails if a release binary holds out-of-line SIMD intrinsics or array-building helpers: the
# sign that a `#[target_feature]` kernel's hot loop calls them instead of inlining them (kiln
# issue 19: with `codegen-units = 1`, closures passed to `core::array::from_fn` in the AVX-512
# GEMM epilogue stayed calls, and MiniLM ran 1.6× slower). Build the binary with
# `CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1`, the profile where this shows.
#
#   tools/check_inlining.sh target/release/deps/kiln_runtime-<hash> [llvm-nm]
set -euo pipefail
bin="$1"
[ -f "$bin" ] || { echo "check_inlining: no binary at '$bin'" >&2; exit 2; }
nm_="${2:-nm}"
# CPU-feature detection calls (`_xgetbv`, `__cpuid`) are out of line by design: not hot.
bad="$("$nm_" -C "$bin" | awk '{ $1 = ""; $2 = ""; print }' | sed 's/::h[0-9a-f]\{16\}$//' |
    grep -E 'core::core_arch::|core::array::(try_)?from_fn|core::array::drain' |
    grep -Ev '_xgetbv|__cpuid|has_cpuid' | sort | uniq -c || true)"
if [ -n "$bad" ]; then
    echo "check_inlining: $bin has out-of-line intrinsics or array builders (a hot loop calls them):"
    echo "$bad"
    echo "replace the closure/generic helper by a loop, or give the helper the kernel's #[target_feature]"
    exit 1
fi
echo "check_inlining: $bin: no out-of-line intrinsics"
