//! The allocation-free path: `Model::run_in` in caller-provided arenas (the code path firmware
//! runs without `alloc`; examples/no_std runs it in a build without `alloc` too), compared with
//! onnxruntime's outputs, plus the arena errors.
mod common;

use kiln::runtime::arena::StaticArena;
use kiln::runtime::isa::Isa;

/// `"atol": x` and `"rtol": y` of the case's meta.json (the tolerances tests/models.rs uses).
fn tolerances(case: &str) -> (f32, f32) {
    let meta = std::fs::read_to_string(format!(
        "{}/tests/models/{case}/meta.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let num = |key: &str| -> f32 {
        let rest = &meta[meta.find(&format!("\"{key}\":")).unwrap() + key.len() + 3..];
        let end = rest.find([',', '\n', '}']).unwrap();
        rest[..end].trim().parse().unwrap()
    };
    (num("atol"), num("rtol"))
}

macro_rules! arena_case {
    ($case:ident, $path:literal) => {
        mod $case {
            kiln::include_model!($path);
        }

        #[test]
        fn $case() {
            use $case as m;
            let case = stringify!($case);
            let dir = common::case_dir(&format!("tests/models/{case}"));
            let input = common::load(dir.join("input_0.pb"));
            let want = common::load(dir.join("output_0.pb"));
            let (atol, rtol) = tolerances(case);
            const { assert!(m::ARENA_BYTES <= m::NAIVE_WORKSPACE_BYTES) };
            const { assert!(m::WORKSPACE_BYTES == m::ARENA_BYTES) };

            // The three kinds of arena: the typed buffer (here boxed), a byte slice inside a
            // larger one (at an aligned offset), and a `static`.
            let mut boxed = Box::new(m::Arena::new());
            let mut big = vec![0u8; m::ARENA_BYTES + 64];
            let start = big.as_ptr().align_offset(m::ARENA_ALIGN);
            static STATIC: StaticArena<{ m::ARENA_BYTES }> = StaticArena::new();
            let from_static = STATIC.take().unwrap();
            let arenas: [&mut [u8]; 3] = [&mut boxed[..], &mut big[start..], from_static];

            for arena in arenas {
                for isa in Isa::all_available() {
                    let model = m::Model::with_isa(isa);
                    let x =
                        kiln::TensorRef::new(common::data::<f32>(&input), &input.shape).unwrap();
                    // Garbage left by a previous model or run must not matter.
                    arena.fill(0xA5);
                    let out = model
                        .run_in(arena, m::Inputs { x })
                        .unwrap_or_else(|e| panic!("{case} [{isa}]: {e}"));
                    let what = format!("{case} [{isa}] run_in");
                    assert_eq!(out.y.shape(), &want.shape[..], "{what}: shape");
                    common::assert_close(
                        &what,
                        out.y.data(),
                        common::data::<f32>(&want),
                        atol,
                        rtol,
                    );
                    let got = out.y.data().to_vec();

                    // `run` (the model's own arena) computes the same thing.
                    let mut owned = m::Model::with_isa(isa);
                    let out = owned.run(m::Inputs { x }).unwrap();
                    assert_eq!(out.y.data(), &got[..], "{what}: run vs run_in");
                }
            }
        }
    };
}

arena_case!(mlp_a_q_s8, "tests/models/mlp_a_q_s8/model.onnx");
arena_case!(mlp_c_f32, "tests/models/mlp_c_f32/model.onnx");
arena_case!(
    mlp_3d_q_u8_pc_rr,
    "tests/models/mlp_3d_q_u8_pc_rr/model.onnx"
);
arena_case!(
    block_ln_gelu_q_s8,
    "tests/models/block_ln_gelu_q_s8/model.onnx"
);

mod mlp {
    kiln::include_model!("tests/models/mlp_a_q_s8/model.onnx");
}

#[test]
fn arena_too_small_or_misaligned_is_an_error() {
    let x = vec![0.25f32; 64];
    let x = kiln::TensorRef::new(&x, &[1, 64]).unwrap();
    let model = mlp::Model::new();
    let mut buf = vec![0u8; mlp::ARENA_BYTES + 64];
    let start = buf.as_ptr().align_offset(mlp::ARENA_ALIGN);
    let arena = &mut buf[start..];

    let e = model
        .run_in(&mut arena[..mlp::ARENA_BYTES - 1], mlp::Inputs { x })
        .unwrap_err();
    assert_eq!(
        e,
        kiln::Error::ArenaTooSmall {
            needed: mlp::ARENA_BYTES,
            actual: mlp::ARENA_BYTES - 1
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "arena has {} bytes but the model needs {}",
            mlp::ARENA_BYTES - 1,
            mlp::ARENA_BYTES
        )
    );
    assert!(matches!(
        model.run_in(&mut [], mlp::Inputs { x }),
        Err(kiln::Error::ArenaTooSmall { actual: 0, .. })
    ));

    const { assert!(mlp::ARENA_ALIGN > 1) };
    let e = model
        .run_in(&mut arena[1..], mlp::Inputs { x })
        .unwrap_err();
    assert_eq!(
        e,
        kiln::Error::ArenaMisaligned {
            align: mlp::ARENA_ALIGN,
            offset: 1
        }
    );

    // A larger arena is fine, and the model's own arena is not needed for `run_in`.
    assert!(model.run_in(arena, mlp::Inputs { x }).is_ok());
}

#[test]
fn arena_is_smaller_than_the_naive_sum() {
    // Liveness reuse across dtypes: numbers in docs/embedded.md.
    assert_eq!(
        (
            mlp::ARENA_BYTES,
            mlp::NAIVE_WORKSPACE_BYTES,
            mlp::ARENA_ALIGN
        ),
        (221, 310, 4)
    );
    assert_eq!(
        (
            block_ln_gelu_q_s8::ARENA_BYTES,
            block_ln_gelu_q_s8::NAIVE_WORKSPACE_BYTES
        ),
        (2304, 5722)
    );
}
