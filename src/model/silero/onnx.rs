//! Just enough of the ONNX format to lift Silero VAD's weights out of `silero_vad.onnx`.
//!
//! The file is a protobuf `ModelProto`; the weights are `Constant` nodes inside the branches of an
//! `If` on the sample rate (one branch per rate, each with its own weights). Only the fields on
//! that path are declared here (field numbers from onnx.proto), so prost skips everything else,
//! and no ONNX runtime is needed: the network itself is rebuilt with candle in [`super::network`].

use std::collections::HashMap;

use prost::Message;

/// `onnx.ModelProto`, reduced to its graph.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

/// `onnx.GraphProto`, reduced to its nodes and initializers.
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

/// `onnx.NodeProto`.
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

/// `onnx.AttributeProto`: a tensor (a `Constant`'s value) or a sub-graph (an `If` branch).
#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(message, optional, tag = "6")]
    g: Option<GraphProto>,
}

/// `onnx.TensorProto`, float tensors only.
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

/// `TensorProto.DataType.FLOAT`.
const FLOAT: i32 = 1;

/// A float tensor lifted from the file: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawTensor {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// Why the file does not hold the weights we expect.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Not a protobuf `ModelProto` at all.
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A protobuf, but not one with a graph.
    #[error("the ONNX model has no graph")]
    NoGraph,
    /// A tensor we need is stored in a type we do not read.
    #[error("ONNX tensor {name}: data type {data_type} is not float32")]
    NotFloat {
        /// The tensor's name.
        name: String,
        /// Its `TensorProto.DataType`.
        data_type: i32,
    },
    /// A tensor's data does not fill its shape.
    #[error("ONNX tensor {name}: {values} values for shape {dims:?}")]
    WrongLength {
        /// The tensor's name.
        name: String,
        /// Its declared shape.
        dims: Vec<usize>,
        /// How many values it holds.
        values: usize,
    },
}

/// Every float constant in the model, in every sub-graph, keyed by the name of the value it
/// produces (for a `Constant` node) or its own name (for an initializer). Sub-graph names carry
/// the exporter's branch prefix, so the two sample-rate branches do not collide.
pub(super) fn float_constants(bytes: &[u8]) -> Result<HashMap<String, RawTensor>, OnnxError> {
    let model = ModelProto::decode(bytes)?;
    let graph = model.graph.ok_or(OnnxError::NoGraph)?;
    let mut out = HashMap::new();
    collect(&graph, &mut out)?;
    Ok(out)
}

fn collect(graph: &GraphProto, out: &mut HashMap<String, RawTensor>) -> Result<(), OnnxError> {
    for tensor in &graph.initializer {
        if tensor.data_type == FLOAT {
            out.insert(tensor.name.clone(), raw(&tensor.name, tensor)?);
        }
    }
    for node in &graph.node {
        for attribute in &node.attribute {
            if let Some(sub) = &attribute.g {
                collect(sub, out)?;
            }
            let (Some(tensor), Some(name)) = (&attribute.t, node.output.first()) else {
                continue;
            };
            if node.op_type == "Constant" && attribute.name == "value" && tensor.data_type == FLOAT
            {
                out.insert(name.clone(), raw(name, tensor)?);
            }
        }
    }
    Ok(())
}

fn raw(name: &str, tensor: &TensorProto) -> Result<RawTensor, OnnxError> {
    if tensor.data_type != FLOAT {
        return Err(OnnxError::NotFloat {
            name: name.to_owned(),
            data_type: tensor.data_type,
        });
    }
    let dims: Vec<usize> = tensor.dims.iter().map(|&d| d.max(0) as usize).collect();
    let values: Vec<f32> = if tensor.raw_data.is_empty() {
        tensor.float_data.clone()
    } else {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    if values.len() != dims.iter().product::<usize>() {
        return Err(OnnxError::WrongLength {
            name: name.to_owned(),
            dims,
            values: values.len(),
        });
    }
    Ok(RawTensor { dims, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(output: &str, dims: Vec<i64>, values: &[f32]) -> NodeProto {
        NodeProto {
            output: vec![output.to_owned()],
            op_type: "Constant".to_owned(),
            attribute: vec![AttributeProto {
                name: "value".to_owned(),
                t: Some(TensorProto {
                    dims,
                    data_type: FLOAT,
                    raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..TensorProto::default()
                }),
                g: None,
            }],
        }
    }

    #[test]
    fn constants_are_found_in_nested_branches_with_their_values() {
        let branch = GraphProto {
            node: vec![constant("then__w", vec![2, 2], &[1.0, 2.0, 3.0, 4.0])],
            initializer: vec![],
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    constant("top", vec![1], &[0.5]),
                    NodeProto {
                        output: vec!["if_out".to_owned()],
                        op_type: "If".to_owned(),
                        attribute: vec![AttributeProto {
                            name: "then_branch".to_owned(),
                            t: None,
                            g: Some(branch),
                        }],
                    },
                ],
                initializer: vec![TensorProto {
                    dims: vec![3],
                    data_type: FLOAT,
                    float_data: vec![7.0, 8.0, 9.0],
                    name: "init".to_owned(),
                    raw_data: vec![],
                }],
            }),
        };
        let found = float_constants(&model.encode_to_vec()).unwrap();
        assert_eq!(found["then__w"].dims, vec![2, 2]);
        assert_eq!(found["then__w"].values, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(found["top"].values, vec![0.5]);
        assert_eq!(found["init"].values, vec![7.0, 8.0, 9.0]);
    }

    #[test]
    fn a_short_tensor_and_garbage_are_refused_by_name() {
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![constant("w", vec![3], &[1.0, 2.0])],
                initializer: vec![],
            }),
        };
        let err = float_constants(&model.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("ONNX tensor w: 2 values"), "{err}");
        assert!(matches!(
            float_constants(b"\xff\xff\xff"),
            Err(OnnxError::Decode(_))
        ));
        assert!(matches!(
            float_constants(&ModelProto { graph: None }.encode_to_vec()),
            Err(OnnxError::NoGraph)
        ));
    }
}
