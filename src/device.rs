//! Choosing where networks run.

use candle_core::Device;

/// CUDA device 0 when built with `--features cuda` and a GPU is present (unless `cpu`), else CPU.
pub fn select(cpu: bool) -> Device {
    if !cpu {
        #[cfg(feature = "cuda")]
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
    }
    Device::Cpu
}

/// A short name for logs and the performance pane.
pub fn describe(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "CPU",
        Device::Cuda(_) => "CUDA",
        Device::Metal(_) => "Metal",
    }
}
