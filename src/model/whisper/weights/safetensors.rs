//! Reader for Hugging Face transformers checkpoints (`openai/whisper-*` on the hub):
//! `config.json` + `model.safetensors` (or sharded with `model.safetensors.index.json`).
//!
//! Separate Q/K/V projections are fused here into the canonical `attn.qkv` / `cross.kv` tensors;
//! Whisper's K projections have no bias, so a zero bias fills their slot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::{LoadedWeights, WeightMap, WeightsError, read_json, tensor_err};
use crate::model::whisper::config::{
    HfConfig, HfGenerationConfig, WhisperConfig, default_alignment_heads,
};

/// Loads a transformers Whisper checkpoint from `dir`.
pub(super) fn load(
    dir: &Path,
    device: &Device,
    dtype: DType,
) -> Result<LoadedWeights, WeightsError> {
    let hf: HfConfig = read_json(&dir.join("config.json"))?;
    let generation: HfGenerationConfig = match dir.join("generation_config.json") {
        p if p.is_file() => read_json(&p)?,
        _ => HfGenerationConfig::default(),
    };
    let raw = read_tensors(dir, device, dtype)?;
    let config = to_config(hf, generation);
    let tensors = canonicalise(raw, &config, device, dtype)?;
    Ok(LoadedWeights { config, tensors })
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// Every tensor of every shard, keyed by its name without the `model.` prefix.
fn read_tensors(
    dir: &Path,
    device: &Device,
    dtype: DType,
) -> Result<HashMap<String, Tensor>, WeightsError> {
    let files: Vec<PathBuf> = match dir.join("model.safetensors.index.json") {
        index if index.is_file() => {
            let index: ShardIndex = read_json(&index)?;
            let mut shards: Vec<String> = index.weight_map.into_values().collect();
            shards.sort();
            shards.dedup();
            shards.into_iter().map(|s| dir.join(s)).collect()
        }
        _ => vec![dir.join("model.safetensors")],
    };
    let mut out = HashMap::new();
    for file in files {
        let tensors =
            candle_core::safetensors::load(&file, device).map_err(|e| WeightsError::Corrupt {
                path: file.clone(),
                detail: e.to_string(),
            })?;
        for (name, tensor) in tensors {
            let tensor = if tensor.dtype().is_float() {
                tensor.to_dtype(dtype).map_err(tensor_err(&name))?
            } else {
                tensor
            };
            let key = name.strip_prefix("model.").unwrap_or(&name).to_string();
            out.insert(key, tensor);
        }
    }
    Ok(out)
}

fn to_config(hf: HfConfig, generation: HfGenerationConfig) -> WhisperConfig {
    let alignment_heads = generation
        .alignment_heads
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| default_alignment_heads(hf.decoder_layers, hf.decoder_attention_heads));
    WhisperConfig {
        n_mels: hf.num_mel_bins,
        n_vocab: hf.vocab_size,
        d_model: hf.d_model,
        encoder_layers: hf.encoder_layers,
        encoder_heads: hf.encoder_attention_heads,
        decoder_layers: hf.decoder_layers,
        decoder_heads: hf.decoder_attention_heads,
        n_audio_ctx: hf.max_source_positions,
        n_text_ctx: hf.max_target_positions,
        suppress_ids: generation.suppress_tokens.unwrap_or(hf.suppress_tokens),
        suppress_ids_begin: generation
            .begin_suppress_tokens
            .unwrap_or(hf.begin_suppress_tokens),
        alignment_heads,
    }
}

/// Renames and fuses the transformers tensors into canonical ones.
fn canonicalise(
    mut raw: HashMap<String, Tensor>,
    config: &WhisperConfig,
    device: &Device,
    dtype: DType,
) -> Result<WeightMap, WeightsError> {
    let mut map = WeightMap::default();
    let mut take = |name: &str| {
        raw.remove(name)
            .ok_or_else(|| WeightsError::MissingTensor(format!("model.{name}")))
    };
    for side in ["encoder", "decoder"] {
        let (layers, prefix) = match side {
            "encoder" => (config.encoder_layers, "encoder"),
            _ => (config.decoder_layers, "decoder"),
        };
        for i in 0..layers {
            let src = format!("{prefix}.layers.{i}");
            let dst = format!("{side}.layers.{i}");
            let zero_bias =
                Tensor::zeros(config.d_model, dtype, device).map_err(tensor_err(&src))?;
            fuse(
                &mut map,
                &mut take,
                &format!("{src}.self_attn"),
                ["q", "k", "v"],
                &format!("{dst}.attn.qkv"),
                &zero_bias,
            )?;
            copy_linear(
                &mut map,
                &mut take,
                &format!("{src}.self_attn.out_proj"),
                &format!("{dst}.attn.out"),
            )?;
            copy_linear(
                &mut map,
                &mut take,
                &format!("{src}.self_attn_layer_norm"),
                &format!("{dst}.attn_ln"),
            )?;
            copy_linear(
                &mut map,
                &mut take,
                &format!("{src}.final_layer_norm"),
                &format!("{dst}.mlp_ln"),
            )?;
            copy_linear(
                &mut map,
                &mut take,
                &format!("{src}.fc1"),
                &format!("{dst}.mlp.fc1"),
            )?;
            copy_linear(
                &mut map,
                &mut take,
                &format!("{src}.fc2"),
                &format!("{dst}.mlp.fc2"),
            )?;
            if side == "decoder" {
                copy_linear(
                    &mut map,
                    &mut take,
                    &format!("{src}.encoder_attn.q_proj"),
                    &format!("{dst}.cross.q"),
                )?;
                fuse(
                    &mut map,
                    &mut take,
                    &format!("{src}.encoder_attn"),
                    ["k", "v"],
                    &format!("{dst}.cross.kv"),
                    &zero_bias,
                )?;
                copy_linear(
                    &mut map,
                    &mut take,
                    &format!("{src}.encoder_attn.out_proj"),
                    &format!("{dst}.cross.out"),
                )?;
                copy_linear(
                    &mut map,
                    &mut take,
                    &format!("{src}.encoder_attn_layer_norm"),
                    &format!("{dst}.cross_ln"),
                )?;
            }
        }
    }
    for (src, dst) in [
        ("encoder.conv1", "encoder.conv1"),
        ("encoder.conv2", "encoder.conv2"),
        ("encoder.layer_norm", "encoder.ln_post"),
        ("decoder.layer_norm", "decoder.ln"),
    ] {
        copy_linear(&mut map, &mut take, src, dst)?;
    }
    for (src, dst) in [
        ("encoder.embed_positions.weight", "encoder.positions"),
        ("decoder.embed_positions.weight", "decoder.positions"),
        ("decoder.embed_tokens.weight", "decoder.token_embedding"),
    ] {
        map.insert(dst.to_string(), take(src)?, format!("model.{src}"));
    }
    Ok(map)
}

/// Copies `src.weight` and `src.bias` to `dst.weight` / `dst.bias`.
fn copy_linear(
    map: &mut WeightMap,
    take: &mut impl FnMut(&str) -> Result<Tensor, WeightsError>,
    src: &str,
    dst: &str,
) -> Result<(), WeightsError> {
    for part in ["weight", "bias"] {
        let tensor = take(&format!("{src}.{part}"))?;
        map.insert(
            format!("{dst}.{part}"),
            tensor,
            format!("model.{src}.{part}"),
        );
    }
    Ok(())
}

/// Concatenates `{src}.{p}_proj` rows for each projection `p` into `{dst}`; `k` has no bias.
fn fuse<const N: usize>(
    map: &mut WeightMap,
    take: &mut impl FnMut(&str) -> Result<Tensor, WeightsError>,
    src: &str,
    projections: [&str; N],
    dst: &str,
    zero_bias: &Tensor,
) -> Result<(), WeightsError> {
    let mut weights = Vec::with_capacity(N);
    let mut biases = Vec::with_capacity(N);
    for p in projections {
        weights.push(take(&format!("{src}.{p}_proj.weight"))?);
        biases.push(match p {
            "k" => zero_bias.clone(),
            _ => take(&format!("{src}.{p}_proj.bias"))?,
        });
    }
    let name = format!("model.{src}.{}_proj", projections.join("/"));
    let weight = Tensor::cat(&weights, 0).map_err(tensor_err(&name))?;
    let bias = Tensor::cat(&biases, 0).map_err(tensor_err(&name))?;
    map.insert(format!("{dst}.weight"), weight, format!("{name}.weight"));
    map.insert(format!("{dst}.bias"), bias, format!("{name}.bias"));
    Ok(())
}
