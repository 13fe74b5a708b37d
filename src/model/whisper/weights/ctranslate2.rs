//! Reader for CTranslate2 `model.bin` files (binary version ≤ 6), the layout of faster-whisper
//! conversions and of hearken's default model.
//!
//! The format is a flat list of named variables with no alignment padding; see
//! `shared/docs/ctranslate2-whisper.md`. Names are mapped to canonical ones here; the int8
//! variant is dequantised (`w = q / scale`, one scale per output row) at load time.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{LoadedWeights, WeightMap, WeightsError, read_json, tensor_err};
use crate::model::whisper::config::{Ct2GenerationConfig, WhisperConfig, default_alignment_heads};

/// Newest binary version this reader understands.
const MAX_BINARY_VERSION: u32 = 6;

/// One variable as stored: shape, CTranslate2 dtype id and raw little-endian bytes.
struct RawVariable<'a> {
    dims: Vec<usize>,
    dtype_id: u8,
    bytes: &'a [u8],
}

/// Loads `dir/model.bin` plus `dir/config.json`.
pub(super) fn load(
    dir: &Path,
    device: &Device,
    dtype: DType,
) -> Result<LoadedWeights, WeightsError> {
    let path = dir.join("model.bin");
    let data = std::fs::read(&path).map_err(|source| WeightsError::Io {
        path: path.clone(),
        source,
    })?;
    let variables = parse(&data).map_err(|detail| WeightsError::Corrupt {
        path: path.clone(),
        detail,
    })?;
    let mut tensors = WeightMap::default();
    for (name, raw) in &variables {
        if name.ends_with("_scale") || is_scalar_setting(raw) {
            continue;
        }
        let Some(canonical) = canonical_name(name) else {
            continue;
        };
        let scale = variables.get(&format!("{name}_scale"));
        let tensor = to_tensor(name, raw, scale, device, dtype)?;
        tensors.insert(canonical, tensor, name.clone());
    }
    let generation: Ct2GenerationConfig = match dir.join("config.json") {
        p if p.is_file() => read_json(&p)?,
        _ => Ct2GenerationConfig::default(),
    };
    let config = infer_config(&tensors, &variables, generation)?;
    Ok(LoadedWeights { config, tensors })
}

/// Scalars (`num_heads`, `pre_norm`, ...) are settings, not weights.
fn is_scalar_setting(raw: &RawVariable<'_>) -> bool {
    raw.dims.is_empty()
}

/// Parses the whole file into named variables; aliases are resolved to their targets.
fn parse(data: &[u8]) -> Result<HashMap<String, RawVariable<'_>>, String> {
    let mut r = Reader { data, pos: 0 };
    let version = r.u32("binary version")?;
    if version == 0 || version > MAX_BINARY_VERSION {
        return Err(format!(
            "binary version {version} is not supported (this reader handles 1 to {MAX_BINARY_VERSION})"
        ));
    }
    if version >= 2 {
        let _spec_name = r.string("spec name")?;
        let _spec_revision = r.u32("spec revision")?;
    }
    let count = r.u32("variable count")?;
    let mut vars = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let name = r.string("variable name")?;
        let var = read_variable(&mut r, &name, version)?;
        vars.insert(name, var);
    }
    if version >= 3 {
        let aliases = r.u32("alias count")?;
        for _ in 0..aliases {
            let alias = r.string("alias name")?;
            let target = r.string("alias target")?;
            if let Some(v) = vars.get(&target) {
                let copy = RawVariable {
                    dims: v.dims.clone(),
                    dtype_id: v.dtype_id,
                    bytes: v.bytes,
                };
                vars.insert(alias, copy);
            }
        }
    }
    Ok(vars)
}

fn read_variable<'a>(
    r: &mut Reader<'a>,
    name: &str,
    version: u32,
) -> Result<RawVariable<'a>, String> {
    let ctx = |what: &str| format!("{what} of `{name}`");
    let rank = r.u8(&ctx("rank"))? as usize;
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        dims.push(r.u32(&ctx("dimension"))? as usize);
    }
    let elements: usize = dims.iter().product();
    let (dtype_id, num_bytes) = if version >= 4 {
        let dtype_id = r.u8(&ctx("dtype"))?;
        (dtype_id, r.u32(&ctx("byte count"))? as usize)
    } else {
        let item_size = r.u8(&ctx("item size"))?;
        let count = r.u32(&ctx("element count"))? as usize;
        let dtype_id = match item_size {
            4 => 0,
            2 => 4,
            1 => 1,
            other => return Err(format!("`{name}`: unknown item size {other}")),
        };
        (dtype_id, count * item_size as usize)
    };
    let item =
        item_size(dtype_id).ok_or_else(|| format!("`{name}`: unknown dtype id {dtype_id}"))?;
    if num_bytes != elements * item {
        return Err(format!(
            "`{name}`: {num_bytes} bytes stored for shape {dims:?} of {item}-byte items"
        ));
    }
    let bytes = r.take(num_bytes, &ctx("data"))?;
    Ok(RawVariable {
        dims,
        dtype_id,
        bytes,
    })
}

fn item_size(dtype_id: u8) -> Option<usize> {
    match dtype_id {
        0 | 3 => Some(4),
        1 => Some(1),
        2 | 4 | 5 => Some(2),
        _ => None,
    }
}

/// Cursor over the file with errors that say what was being read when it ran out.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| {
            format!(
                "file truncated while reading {what} at byte {} ({} bytes in file)",
                self.pos,
                self.data.len()
            )
        })?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    /// `u16` length including the trailing NUL, then the bytes.
    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = self.u16(what)? as usize;
        if len == 0 {
            return Err(format!(
                "zero-length string for {what} at byte {}",
                self.pos
            ));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes[..len - 1].to_vec())
            .map_err(|_| format!("{what} is not UTF-8 at byte {}", self.pos))
    }
}

/// Decodes one variable to a tensor of `dtype`, dequantising int8 weights with their scale.
fn to_tensor(
    name: &str,
    raw: &RawVariable<'_>,
    scale: Option<&RawVariable<'_>>,
    device: &Device,
    dtype: DType,
) -> Result<Tensor, WeightsError> {
    let values: Vec<f32> = match raw.dtype_id {
        0 => raw
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        4 => raw
            .bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        5 => raw
            .bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        1 => dequantize_int8(name, raw, scale)?,
        2 => dequantize_int16(name, raw, scale)?,
        other => {
            return Err(WeightsError::UnsupportedDType {
                name: name.to_string(),
                dtype: format!("CTranslate2 dtype id {other}"),
            });
        }
    };
    Tensor::from_vec(values, raw.dims.as_slice(), device)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(tensor_err(name))
}

/// int8 rows with one f32 scale per output row: `w = q / scale`.
fn dequantize_int8(
    name: &str,
    raw: &RawVariable<'_>,
    scale: Option<&RawVariable<'_>>,
) -> Result<Vec<f32>, WeightsError> {
    let scales = scale_values(name, scale)?;
    let rows = raw.dims.first().copied().unwrap_or(1);
    if scales.len() != rows {
        return Err(WeightsError::ShapeMismatch {
            name: format!("{name}_scale"),
            actual: vec![scales.len()],
            expected: vec![rows],
        });
    }
    let row_len = raw.bytes.len() / rows.max(1);
    Ok(raw
        .bytes
        .chunks_exact(row_len.max(1))
        .zip(&scales)
        .flat_map(|(row, &s)| row.iter().map(move |&q| q as i8 as f32 / s))
        .collect())
}

/// int16 with one global scale: `w = q / scale`.
fn dequantize_int16(
    name: &str,
    raw: &RawVariable<'_>,
    scale: Option<&RawVariable<'_>>,
) -> Result<Vec<f32>, WeightsError> {
    let scale = *scale_values(name, scale)?.first().unwrap_or(&1.0);
    Ok(raw
        .bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / scale)
        .collect())
}

fn scale_values(name: &str, scale: Option<&RawVariable<'_>>) -> Result<Vec<f32>, WeightsError> {
    let scale = scale.ok_or_else(|| WeightsError::MissingTensor(format!("{name}_scale")))?;
    match scale.dtype_id {
        0 => Ok(scale
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()),
        4 => Ok(scale
            .bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        other => Err(WeightsError::UnsupportedDType {
            name: format!("{name}_scale"),
            dtype: format!("CTranslate2 dtype id {other}"),
        }),
    }
}

/// Maps `encoder/layer_3/self_attention/linear_0/weight` to `encoder.layers.3.attn.qkv.weight`.
/// Returns `None` for variables the network does not use (the tied output projection).
fn canonical_name(name: &str) -> Option<String> {
    if name.starts_with("decoder/projection/") {
        return None;
    }
    const PARTS: &[(&str, &str)] = &[
        ("self_attention/layer_norm", "attn_ln"),
        ("self_attention/linear_0", "attn.qkv"),
        ("self_attention/linear_1", "attn.out"),
        ("attention/layer_norm", "cross_ln"),
        ("attention/linear_0", "cross.q"),
        ("attention/linear_1", "cross.kv"),
        ("attention/linear_2", "cross.out"),
        ("ffn/layer_norm", "mlp_ln"),
        ("ffn/linear_0", "mlp.fc1"),
        ("ffn/linear_1", "mlp.fc2"),
        ("encoder/layer_norm", "encoder.ln_post"),
        ("decoder/layer_norm", "decoder.ln"),
        ("position_encodings/encodings", "positions"),
        ("decoder/embeddings/weight", "decoder.token_embedding"),
        ("/gamma", "/weight"),
        ("/beta", "/bias"),
    ];
    let mut out = name.to_string();
    for (from, to) in PARTS {
        out = out.replace(from, to);
    }
    out = out.replace("layer_", "layers/");
    Some(out.replace('/', "."))
}

/// Recovers the dimensions from tensor shapes and the settings scalars.
fn infer_config(
    tensors: &WeightMap,
    variables: &HashMap<String, RawVariable<'_>>,
    generation: Ct2GenerationConfig,
) -> Result<WhisperConfig, WeightsError> {
    let conv1 = tensors
        .dims("encoder.conv1.weight")
        .ok_or_else(|| WeightsError::MissingTensor("encoder/conv1/weight".into()))?;
    let (d_model, n_mels) = (conv1[0], conv1[1]);
    let n_vocab = tensors
        .dims("decoder.token_embedding")
        .ok_or_else(|| WeightsError::MissingTensor("decoder/embeddings/weight".into()))?[0];
    let positions = |canonical: &str, file: &str| {
        tensors
            .dims(canonical)
            .map(|d| d[0])
            .ok_or_else(|| WeightsError::MissingTensor(file.into()))
    };
    let decoder_layers = tensors.count_layers("decoder");
    let decoder_heads = scalar_int(variables, "decoder/num_heads").unwrap_or(d_model / 64);
    let alignment_heads = if generation.alignment_heads.is_empty() {
        default_alignment_heads(decoder_layers, decoder_heads)
    } else {
        generation.alignment_heads
    };
    Ok(WhisperConfig {
        n_mels,
        n_vocab,
        d_model,
        encoder_layers: tensors.count_layers("encoder"),
        encoder_heads: scalar_int(variables, "encoder/num_heads").unwrap_or(d_model / 64),
        decoder_layers,
        decoder_heads,
        n_audio_ctx: positions("encoder.positions", "encoder/position_encodings/encodings")?,
        n_text_ctx: positions("decoder.positions", "decoder/position_encodings/encodings")?,
        suppress_ids: generation.suppress_ids,
        suppress_ids_begin: generation.suppress_ids_begin,
        alignment_heads,
    })
}

/// Reads an integer scalar setting such as `encoder/num_heads`.
fn scalar_int(variables: &HashMap<String, RawVariable<'_>>, name: &str) -> Option<usize> {
    let v = variables.get(name)?;
    let b = v.bytes;
    match v.dtype_id {
        1 => Some(b[0] as i8 as usize),
        2 => Some(i16::from_le_bytes([b[0], b[1]]) as usize),
        3 => Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_canonical_form() {
        let cases = [
            (
                "encoder/layer_3/self_attention/linear_0/weight",
                "encoder.layers.3.attn.qkv.weight",
            ),
            (
                "encoder/layer_0/self_attention/layer_norm/gamma",
                "encoder.layers.0.attn_ln.weight",
            ),
            (
                "decoder/layer_1/attention/linear_1/bias",
                "decoder.layers.1.cross.kv.bias",
            ),
            (
                "decoder/layer_12/ffn/linear_0/weight",
                "decoder.layers.12.mlp.fc1.weight",
            ),
            ("encoder/layer_norm/beta", "encoder.ln_post.bias"),
            ("decoder/layer_norm/gamma", "decoder.ln.weight"),
            ("decoder/embeddings/weight", "decoder.token_embedding"),
            ("encoder/position_encodings/encodings", "encoder.positions"),
            ("encoder/conv2/bias", "encoder.conv2.bias"),
        ];
        for (file, canonical) in cases {
            assert_eq!(canonical_name(file).as_deref(), Some(canonical), "{file}");
        }
        assert_eq!(canonical_name("decoder/projection/weight"), None);
    }

    #[test]
    fn truncated_file_names_what_was_being_read() {
        let mut data = Vec::new();
        data.extend_from_slice(&6u32.to_le_bytes());
        data.extend_from_slice(&12u16.to_le_bytes());
        data.extend_from_slice(b"WhisperSpec\0");
        data.extend_from_slice(&3u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        data.extend_from_slice(&7u16.to_le_bytes());
        data.extend_from_slice(b"a/bias\0");
        data.push(1); // rank
        data.extend_from_slice(&4u32.to_le_bytes());
        data.push(0); // f32
        data.extend_from_slice(&16u32.to_le_bytes());
        data.extend_from_slice(&[0u8; 8]); // only half the payload
        let err = parse(&data).err().expect("must fail");
        assert!(err.contains("data of `a/bias`"), "{err}");
    }

    #[test]
    fn rejects_newer_binary_versions() {
        let err = parse(&7u32.to_le_bytes()).err().expect("must fail");
        assert!(err.contains("binary version 7"), "{err}");
    }

    /// Serialises variables in the binary-version-6 layout (no aliases), as the converter does.
    fn write_model(vars: &[(String, Vec<usize>, u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, dims, dtype, bytes) in vars {
            string(&mut out, name);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    fn floats(raw: &RawVariable<'_>) -> Vec<f32> {
        raw.bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    }

    /// The int8 + per-row scale and bf16 variants a user's own conversion may hold load to the
    /// same network as the default float16 file, within quantisation error.
    #[test]
    fn int8_and_bf16_conversions_load() {
        let src = crate::model::store::ModelStore::from_env()
            .resolve("tiny.en")
            .unwrap()
            .dir;
        let data = std::fs::read(src.join("model.bin")).unwrap();
        let original = parse(&data).unwrap();
        let mut vars = Vec::new();
        let mut names: Vec<&String> = original.keys().collect();
        names.sort();
        for name in names {
            let raw = &original[name];
            if raw.dtype_id != 4 || name == "decoder/projection/weight" {
                vars.push((
                    name.clone(),
                    raw.dims.clone(),
                    raw.dtype_id,
                    raw.bytes.to_vec(),
                ));
                continue;
            }
            let values = floats(raw);
            if name.ends_with("/weight") && raw.dims.len() >= 2 {
                let rows = raw.dims[0];
                let row_len = values.len() / rows;
                let mut q = Vec::with_capacity(values.len());
                let mut scales = Vec::with_capacity(rows * 4);
                for row in values.chunks_exact(row_len) {
                    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let scale = if amax == 0.0 { 1.0 } else { 127.0 / amax };
                    q.extend(row.iter().map(|v| (v * scale).round() as i8 as u8));
                    scales.extend_from_slice(&scale.to_le_bytes());
                }
                vars.push((name.clone(), raw.dims.clone(), 1, q));
                vars.push((format!("{name}_scale"), vec![rows], 0, scales));
            } else {
                let bf16: Vec<u8> = values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect();
                vars.push((name.clone(), raw.dims.clone(), 5, bf16));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), write_model(&vars)).unwrap();
        std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
        let reference = load(&src, &Device::Cpu, DType::F32).unwrap();
        let converted = load(dir.path(), &Device::Cpu, DType::F32).unwrap();
        assert_eq!(reference.config, converted.config);
        for (name, shape, tolerance) in [
            ("encoder.layers.0.attn.qkv.weight", vec![1152, 384], 0.02),
            ("decoder.token_embedding", vec![51864, 384], 0.02),
            ("encoder.conv1.weight", vec![384, 80, 3], 0.02),
            ("decoder.layers.3.mlp_ln.weight", vec![384], 0.02),
        ] {
            let a = reference.tensors.get(name, &shape).unwrap();
            let b = converted.tensors.get(name, &shape).unwrap();
            let diff = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            let diff = diff.to_scalar::<f32>().unwrap();
            assert!(
                diff > 0.0 && diff < tolerance,
                "{name}: max difference {diff}"
            );
        }
    }
}
