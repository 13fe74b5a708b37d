//! Loading both checkpoint layouts: the default CTranslate2 model, the same weights re-written
//! in Hugging Face transformers layout by this test, and clear errors for broken checkpoints.

mod support;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use hearken::model::whisper::WhisperModel;
use hearken::model::whisper::config::WhisperConfig;
use hearken::model::whisper::decode::DecodeOptions;
use hearken::model::whisper::model::Whisper;
use hearken::model::whisper::precision::Products;
use hearken::model::whisper::weights::{self, WeightMap};

/// Re-writes canonical tensors under transformers' names, un-fusing Q/K/V as HF stores them.
fn to_hf(w: &WeightMap, c: &WhisperConfig) -> HashMap<String, Tensor> {
    let d = c.d_model;
    let mut out = HashMap::new();
    let mut put = |name: String, t: Tensor| {
        out.insert(name, t.to_dtype(DType::F16).unwrap());
    };
    let linear = |put: &mut dyn FnMut(String, Tensor), src: &str, dst: &str, o: usize, i: usize| {
        // `i == 0` marks a layer norm, whose weight is a vector.
        let shape: &[usize] = if i == 0 { &[o] } else { &[o, i] };
        put(
            format!("model.{dst}.weight"),
            w.get(&format!("{src}.weight"), shape).unwrap(),
        );
        put(
            format!("model.{dst}.bias"),
            w.get(&format!("{src}.bias"), &[o]).unwrap(),
        );
    };
    let split = |put: &mut dyn FnMut(String, Tensor), src: &str, dst: &str, names: &[&str]| {
        let n = names.len();
        let weight = w.get(&format!("{src}.weight"), &[n * d, d]).unwrap();
        let bias = w.get(&format!("{src}.bias"), &[n * d]).unwrap();
        for (i, p) in names.iter().enumerate() {
            put(
                format!("model.{dst}.{p}_proj.weight"),
                weight.narrow(0, i * d, d).unwrap(),
            );
            if *p != "k" {
                put(
                    format!("model.{dst}.{p}_proj.bias"),
                    bias.narrow(0, i * d, d).unwrap(),
                );
            }
        }
    };
    for side in ["encoder", "decoder"] {
        let layers = if side == "encoder" {
            c.encoder_layers
        } else {
            c.decoder_layers
        };
        for l in 0..layers {
            let (s, t) = (format!("{side}.layers.{l}"), format!("{side}.layers.{l}"));
            split(
                &mut put,
                &format!("{s}.attn.qkv"),
                &format!("{t}.self_attn"),
                &["q", "k", "v"],
            );
            linear(
                &mut put,
                &format!("{s}.attn.out"),
                &format!("{t}.self_attn.out_proj"),
                d,
                d,
            );
            linear(
                &mut put,
                &format!("{s}.attn_ln"),
                &format!("{t}.self_attn_layer_norm"),
                d,
                0,
            );
            linear(
                &mut put,
                &format!("{s}.mlp_ln"),
                &format!("{t}.final_layer_norm"),
                d,
                0,
            );
            linear(
                &mut put,
                &format!("{s}.mlp.fc1"),
                &format!("{t}.fc1"),
                4 * d,
                d,
            );
            linear(
                &mut put,
                &format!("{s}.mlp.fc2"),
                &format!("{t}.fc2"),
                d,
                4 * d,
            );
            if side == "decoder" {
                linear(
                    &mut put,
                    &format!("{s}.cross.q"),
                    &format!("{t}.encoder_attn.q_proj"),
                    d,
                    d,
                );
                split(
                    &mut put,
                    &format!("{s}.cross.kv"),
                    &format!("{t}.encoder_attn"),
                    &["k", "v"],
                );
                linear(
                    &mut put,
                    &format!("{s}.cross.out"),
                    &format!("{t}.encoder_attn.out_proj"),
                    d,
                    d,
                );
                linear(
                    &mut put,
                    &format!("{s}.cross_ln"),
                    &format!("{t}.encoder_attn_layer_norm"),
                    d,
                    0,
                );
            }
        }
    }
    put(
        "model.encoder.conv1.weight".into(),
        w.get("encoder.conv1.weight", &[d, c.n_mels, 3]).unwrap(),
    );
    put(
        "model.encoder.conv1.bias".into(),
        w.get("encoder.conv1.bias", &[d]).unwrap(),
    );
    put(
        "model.encoder.conv2.weight".into(),
        w.get("encoder.conv2.weight", &[d, d, 3]).unwrap(),
    );
    put(
        "model.encoder.conv2.bias".into(),
        w.get("encoder.conv2.bias", &[d]).unwrap(),
    );
    linear(&mut put, "encoder.ln_post", "encoder.layer_norm", d, 0);
    linear(&mut put, "decoder.ln", "decoder.layer_norm", d, 0);
    put(
        "model.encoder.embed_positions.weight".into(),
        w.get("encoder.positions", &[c.n_audio_ctx, d]).unwrap(),
    );
    put(
        "model.decoder.embed_positions.weight".into(),
        w.get("decoder.positions", &[c.n_text_ctx, d]).unwrap(),
    );
    put(
        "model.decoder.embed_tokens.weight".into(),
        w.get("decoder.token_embedding", &[c.n_vocab, d]).unwrap(),
    );
    out
}

fn hf_config(c: &WhisperConfig) -> serde_json::Value {
    serde_json::json!({
        "model_type": "whisper",
        "num_mel_bins": c.n_mels, "vocab_size": c.n_vocab, "d_model": c.d_model,
        "encoder_layers": c.encoder_layers, "encoder_attention_heads": c.encoder_heads,
        "decoder_layers": c.decoder_layers, "decoder_attention_heads": c.decoder_heads,
        "max_source_positions": c.n_audio_ctx, "max_target_positions": c.n_text_ctx,
        "suppress_tokens": c.suppress_ids, "begin_suppress_tokens": c.suppress_ids_begin,
    })
}

fn write_hf_dir(dir: &Path, tensors: &HashMap<String, Tensor>, c: &WhisperConfig) {
    candle_core::safetensors::save(tensors, dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), hf_config(c).to_string()).unwrap();
    std::fs::copy(
        support::default_model_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
}

#[test]
fn huggingface_layout_gives_the_same_transcript_as_ctranslate2() {
    let ct2_dir = support::default_model_dir();
    let loaded = weights::load(&ct2_dir, &Device::Cpu, DType::F32).unwrap();
    let hf = tempfile::tempdir().unwrap();
    write_hf_dir(
        hf.path(),
        &to_hf(&loaded.tensors, &loaded.config),
        &loaded.config,
    );

    let from_hf = WhisperModel::load(hf.path(), &Device::Cpu).unwrap();
    assert_eq!(from_hf.network.config.n_vocab, loaded.config.n_vocab);
    let (_, samples) = support::clip("jfk");
    let opts = DecodeOptions::default();
    let a = support::default_model()
        .transcriber(1)
        .transcribe(&samples, &opts)
        .unwrap();
    let b = from_hf.transcriber(1).transcribe(&samples, &opts).unwrap();
    assert!(!a.text.is_empty());
    assert_eq!(a.text, b.text);
}

/// A tiny random checkpoint in transformers layout (one layer each side, width 16).
fn tiny_random_hf() -> (HashMap<String, Tensor>, WhisperConfig) {
    let c = WhisperConfig {
        n_mels: 80,
        n_vocab: 51864,
        d_model: 16,
        encoder_layers: 1,
        encoder_heads: 2,
        decoder_layers: 1,
        decoder_heads: 2,
        n_audio_ctx: 1500,
        n_text_ctx: 448,
        suppress_ids: vec![],
        suppress_ids_begin: vec![],
        alignment_heads: vec![],
    };
    let mut w = WeightMap::default();
    let mut add = |name: &str, shape: &[usize]| {
        let t = Tensor::randn(0f32, 0.02, shape, &Device::Cpu).unwrap();
        w.insert_for_tests(name, t);
    };
    let d = c.d_model;
    for side in ["encoder", "decoder"] {
        let p = format!("{side}.layers.0");
        for (n, o, i) in [
            ("attn.qkv", 3 * d, d),
            ("attn.out", d, d),
            ("mlp.fc1", 4 * d, d),
            ("mlp.fc2", d, 4 * d),
            ("cross.q", d, d),
            ("cross.kv", 2 * d, d),
            ("cross.out", d, d),
        ] {
            add(&format!("{p}.{n}.weight"), &[o, i]);
            add(&format!("{p}.{n}.bias"), &[o]);
        }
        for n in ["attn_ln", "mlp_ln", "cross_ln"] {
            add(&format!("{p}.{n}.weight"), &[d]);
            add(&format!("{p}.{n}.bias"), &[d]);
        }
    }
    for (n, shape) in [
        ("encoder.conv1.weight", vec![d, 80, 3]),
        ("encoder.conv1.bias", vec![d]),
        ("encoder.conv2.weight", vec![d, d, 3]),
        ("encoder.conv2.bias", vec![d]),
        ("encoder.ln_post.weight", vec![d]),
        ("encoder.ln_post.bias", vec![d]),
        ("decoder.ln.weight", vec![d]),
        ("decoder.ln.bias", vec![d]),
        ("encoder.positions", vec![1500, d]),
        ("decoder.positions", vec![448, d]),
        ("decoder.token_embedding", vec![51864, d]),
    ] {
        add(n, &shape);
    }
    (to_hf(&w, &c), c)
}

fn load_network(dir: &Path) -> Result<Whisper, String> {
    let loaded = weights::load(dir, &Device::Cpu, DType::F32).map_err(|e| e.to_string())?;
    Whisper::new(
        loaded.config,
        &loaded.tensors,
        Device::Cpu,
        DType::F32,
        Products::F32,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn small_random_huggingface_checkpoint_loads_and_runs() {
    let (tensors, c) = tiny_random_hf();
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &tensors, &c);
    let net = load_network(dir.path()).unwrap();
    let mel = Tensor::zeros((2, 80, 3000), DType::F32, &Device::Cpu).unwrap();
    let audio = net.encoder.forward(&mel).unwrap();
    assert_eq!(audio.dims(), &[2, 1500, 16]);
}

/// A trimmed window is encoded for its frames only, and the decoder still reads a whole
/// window: the positions after them come from the silent window.
#[test]
fn trimmed_windows_are_followed_by_silence_up_to_a_whole_window() {
    let (tensors, c) = tiny_random_hf();
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &tensors, &c);
    let net = load_network(dir.path()).unwrap();
    let mel = Tensor::randn(0f32, 1.0, (2, 80, 300), &Device::Cpu).unwrap();
    let trimmed = net.encode_with_silence(&mel).unwrap();
    assert_eq!((trimmed.rows(), trimmed.positions()), (2, 1500));
    let full = net.encode(&Tensor::zeros((1, 80, 3000), DType::F32, &Device::Cpu).unwrap());
    assert_eq!(full.unwrap().positions(), 1500);
}

#[test]
fn missing_tensor_is_named() {
    let (mut tensors, c) = tiny_random_hf();
    tensors.remove("model.decoder.layers.0.fc2.weight");
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &tensors, &c);
    let err = load_network(dir.path()).unwrap_err();
    assert!(err.contains("model.decoder.layers.0.fc2.weight"), "{err}");
}

#[test]
fn shape_mismatch_is_named() {
    let (mut tensors, c) = tiny_random_hf();
    tensors.insert(
        "model.encoder.layers.0.fc1.weight".into(),
        Tensor::zeros((7, 16), DType::F16, &Device::Cpu).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &tensors, &c);
    let err = load_network(dir.path()).unwrap_err();
    assert!(
        err.contains("model.encoder.layers.0.fc1.weight") && err.contains("[7, 16]"),
        "{err}"
    );
}

#[test]
fn truncated_ctranslate2_file_is_a_clear_error() {
    let src = support::default_model_dir();
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(src.join("model.bin")).unwrap();
    std::fs::write(dir.path().join("model.bin"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let err = load_network(dir.path()).unwrap_err();
    assert!(
        err.contains("truncated") && err.contains("model.bin") && err.contains('`'),
        "{err}"
    );
}

#[test]
fn corrupt_safetensors_is_a_clear_error() {
    let (tensors, c) = tiny_random_hf();
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &tensors, &c);
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_network(dir.path()).unwrap_err();
    assert!(err.contains("model.safetensors"), "{err}");
}
