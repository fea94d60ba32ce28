use candle_core::{Device, Tensor, Var};
use intervene::train::ops::{self, ConvCfg};
fn main() {
    for &(b, c, h, o, k, s, p) in &[(4usize, 256usize, 4usize, 256usize, 3usize, 1usize, 1usize), (4, 128, 8, 256, 3, 2, 1), (4, 512, 2, 512, 3, 1, 1), (4, 64, 16, 64, 3, 1, 1), (4, 3, 64, 64, 7, 2, 3), (4, 256, 4, 512, 3, 2, 1), (4,256,4,512,1,2,0)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, c, h, h), &Device::Cpu).unwrap()).unwrap();
        let w = Var::from_tensor(&(Tensor::randn(0f32, 1., (o, c, k, k), &Device::Cpu).unwrap() * 0.05).unwrap()).unwrap();
        let y1 = ops::conv2d(x.as_tensor(), w.as_tensor(), None, ConvCfg::new(s, p)).unwrap();
        let y2 = x.as_tensor().conv2d(w.as_tensor(), p, s, 1, 1).unwrap();
        let r = Tensor::randn(0f32, 1., y1.shape(), &Device::Cpu).unwrap();
        let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let d = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        println!("{:?}: y {:e} dx {:e} dw {:e}", (b, c, h, o, k, s, p), d(&y1, &y2), d(g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap()), d(g1.get(w.as_tensor()).unwrap(), g2.get(w.as_tensor()).unwrap()));
    }
}
