//! The adversarial losses of the generator trainings.
//!
//! - **hinge** (BigGAN, SAGAN): `L_D = mean(relu(1 − D(x))) + mean(relu(1 + D(G(z))))`,
//!   `L_G = −mean(D(G(z)))`;
//! - **least squares** (LSGAN, the CGN's `MSELoss` to 1 / 0): `mean((D − target)²)`, in
//!   [`crate::train::nets::cgn_mnist::mse_to`];
//! - the CGN's mask loss, [`crate::train::nets::cgn_mnist::binary_entropy`].

use candle_core::{Result, Tensor};

/// Hinge loss of the discriminator.
pub fn hinge_d(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    let r = (1.0 - real)?.relu()?.mean_all()?;
    let f = (fake + 1.0)?.relu()?.mean_all()?;
    r + f
}

/// Hinge loss of the generator.
pub fn hinge_g(fake: &Tensor) -> Result<Tensor> {
    fake.mean_all()?.neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn hinge_values_and_gradients() {
        let dev = Device::Cpu;
        let real = Var::new(&[2.0f32, 0.5, -1.0], &dev).unwrap();
        let fake = Var::new(&[-2.0f32, 0.0, 1.0], &dev).unwrap();
        let l = hinge_d(real.as_tensor(), fake.as_tensor()).unwrap();
        // real: relu(1−2)=0, 0.5, 2 → 2.5/3; fake: 0, 1, 2 → 1.
        assert!((l.to_scalar::<f32>().unwrap() - (2.5 / 3.0 + 1.0)).abs() < 1e-6);
        let g = l.backward().unwrap();
        let gr = g.get(real.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let gf = g.get(fake.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let t = 1.0 / 3.0;
        assert_eq!(gr, [0.0, -t, -t]);
        assert_eq!(gf, [0.0, t, t]);
        let lg = hinge_g(fake.as_tensor()).unwrap();
        assert!((lg.to_scalar::<f32>().unwrap() - 1.0 / 3.0).abs() < 1e-6);
    }
}
