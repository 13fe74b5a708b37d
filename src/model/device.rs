//! Choosing where the model runs: `cpu` (default, f32) or `cuda[:N]` (f16, needs the `cuda`
//! cargo feature).

use candle_core::Device;

/// A device the user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU, multi-threaded.
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
}

/// Errors choosing a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The string is not a device name.
    #[error("unknown device `{0}` (expected `cpu`, `cuda` or `cuda:N`)")]
    Unknown(String),
    /// The device exists in name but cannot be opened.
    #[error("cannot open {spec}: {detail}")]
    Unavailable {
        /// What was asked for.
        spec: String,
        /// Why it failed (e.g. built without the `cuda` feature).
        detail: String,
    },
}

impl std::str::FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(DeviceError::Unavailable {
                        spec: self.to_string(),
                        detail: "this build has no CUDA support (rebuild with `--features cuda`)"
                            .into(),
                    });
                }
                Device::new_cuda(n).map_err(|e| DeviceError::Unavailable {
                    spec: self.to_string(),
                    detail: e.to_string(),
                })
            }
        }
    }
}
