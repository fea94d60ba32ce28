//! Edits of BigGAN's per-layer latents along principal directions.
//!
//! An edit is (component, latent slots `start..end`, strength). BigGAN-deep takes one latent per
//! slot (`gen_z` + one per GenBlock); an edit changes only the slots of its range, so GANSpace's
//! layer-wise edits ("rotate only in the first layers") are expressible.
//!
//! Two semantics:
//! - **Additive** (GANSpace's viewer, `interactive.py`, latent mode): `z_l ← z_l + s·σ_c·ĉ` with
//!   σ_c = `lat_stdev[c]` (all ones for BigGAN — the viewer scales latent edits by `Z_stdev`,
//!   not by the activation stdev). Several edits on a slot add up.
//! - **Centred** (GenInt, `gen_intervene_data_withfix_seed.py`): `z_l ← z_l − ((z_l − μ)·n̂)·n̂ + ĉ·s·σ_c`
//!   with μ = `lat_mean`, n̂ = ĉ/√(‖ĉ‖² + 1e-8): the coordinate of `z_l − μ` along ĉ is *set*
//!   to `s·σ_c` (s is an offset, not a step) and the orthogonal part is kept. Several edits are
//!   applied one after the other, in list order.
//!
//! Arithmetic is done in f64 per element and rounded to f32 once per slot; slots outside every
//! edit's range are returned bit-identical to the input (the steering cache relies on it).

use std::str::FromStr;

use super::components::Components;

/// One edit: `component` on latent slots `start..end` (end exclusive) with `strength`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edit {
    pub component: usize,
    pub start: usize,
    pub end: usize,
    /// Additive: multiples of the component's latent stdev. Centred: the offset the coordinate is set to.
    pub strength: f32,
}

/// How an edit's strength acts on the latent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EditMode {
    /// GANSpace's viewer: `z + s·σ·ĉ`.
    #[default]
    Additive,
    /// GenInt's interventions: the coordinate along ĉ (relative to `lat_mean`) is set to `s·σ`.
    Centred,
}

impl FromStr for EditMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "additive" | "add" => Ok(Self::Additive),
            "centred" | "centered" | "center" | "centre" => Ok(Self::Centred),
            _ => Err(format!("unknown edit mode '{s}': use additive or centred")),
        }
    }
}

impl FromStr for Edit {
    type Err = String;
    /// `COMP:START:END:STRENGTH`, e.g. `6:0:11:-2`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let usage = "expected COMP:START:END:STRENGTH, e.g. 6:0:11:-2 (component 6 on latent slots 0..11, strength −2)";
        if parts.len() != 4 {
            return Err(format!("'{s}' has {} field(s); {usage}", parts.len()));
        }
        let int = |name: &str, v: &str| {
            v.parse::<usize>().map_err(|_| format!("{name} '{v}' in '{s}' is not a non-negative integer; {usage}"))
        };
        let component = int("COMP", parts[0])?;
        let start = int("START", parts[1])?;
        let end = int("END", parts[2])?;
        let strength = parts[3]
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("STRENGTH '{}' in '{s}' is not a finite number; {usage}", parts[3]))?;
        Ok(Self { component, start, end, strength })
    }
}

impl std::fmt::Display for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}:{}", self.component, self.start, self.end, self.strength)
    }
}

/// Why an edit cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("edit {edit}: component {component} does not exist (the file has {count} components: 0..{last})", last = count.saturating_sub(1))]
    Component { edit: Edit, component: usize, count: usize },
    #[error("edit {edit}: the latent range {start}..{end} must satisfy 0 ≤ START < END ≤ {slots} (the model has {slots} latent slots: gen_z + one per GenBlock)")]
    Range { edit: Edit, start: usize, end: usize, slots: usize },
    #[error("the latents have {got} values, not a multiple of z_dim {z_dim}")]
    Latent { got: usize, z_dim: usize },
    #[error("the components are for z_dim {file} but the latents have z_dim {z_dim}")]
    ZDim { file: usize, z_dim: usize },
}

impl Edit {
    /// Checks the component index and the slot range.
    pub fn validate(&self, num_components: usize, num_latents: usize) -> Result<(), EditError> {
        if self.component >= num_components {
            return Err(EditError::Component { edit: *self, component: self.component, count: num_components });
        }
        if !(self.start < self.end && self.end <= num_latents) {
            return Err(EditError::Range { edit: *self, start: self.start, end: self.end, slots: num_latents });
        }
        Ok(())
    }
}

/// `z ← z + strength·stdev·dir` (GANSpace's additive edit) on one latent.
pub fn additive(z: &mut [f64], dir: &[f32], stdev: f32, strength: f32) {
    let k = strength as f64 * stdev as f64;
    z.iter_mut().zip(dir).for_each(|(v, &c)| *v += k * c as f64);
}

/// `z ← z − ((z − mean)·n̂)·n̂ + dir·offset·stdev` with n̂ = dir/√(‖dir‖² + 1e-8) (GenInt's
/// centred edit) on one latent.
pub fn centred(z: &mut [f64], dir: &[f32], mean: &[f32], stdev: f32, offset: f32) {
    let norm = (dir.iter().map(|&c| c as f64 * c as f64).sum::<f64>() + 1e-8).sqrt();
    let dot: f64 = z.iter().zip(mean).zip(dir).map(|((&v, &m), &c)| (v - m as f64) * c as f64 / norm).sum();
    let k = offset as f64 * stdev as f64;
    z.iter_mut().zip(dir).for_each(|(v, &c)| *v += -dot * (c as f64 / norm) + k * c as f64);
}

/// The per-slot latents after `edits`: `num_latents` vectors, each `b × z_dim` like `z`.
pub fn edit_latents(
    z: &[f32],
    z_dim: usize,
    num_latents: usize,
    comps: &Components,
    edits: &[Edit],
    mode: EditMode,
) -> Result<Vec<Vec<f32>>, EditError> {
    if z_dim == 0 || !z.len().is_multiple_of(z_dim) {
        return Err(EditError::Latent { got: z.len(), z_dim });
    }
    if comps.z_dim() != z_dim {
        return Err(EditError::ZDim { file: comps.z_dim(), z_dim });
    }
    for e in edits {
        e.validate(comps.num_components(), num_latents)?;
    }
    let mut slots = Vec::with_capacity(num_latents);
    for slot in 0..num_latents {
        let active: Vec<&Edit> = edits.iter().filter(|e| (e.start..e.end).contains(&slot)).collect();
        if active.is_empty() {
            slots.push(z.to_vec());
            continue;
        }
        let mut out = Vec::with_capacity(z.len());
        for row in z.chunks_exact(z_dim) {
            let mut v: Vec<f64> = row.iter().map(|&x| x as f64).collect();
            for e in &active {
                let (dir, sd) = (comps.lat_dir(e.component), comps.lat_stdev[e.component]);
                match mode {
                    EditMode::Additive => additive(&mut v, dir, sd, e.strength),
                    EditMode::Centred => centred(&mut v, dir, &comps.lat_mean, sd, e.strength),
                }
            }
            out.extend(v.iter().map(|&x| x as f32));
        }
        slots.push(out);
    }
    Ok(slots)
}

/// GenInt's reference offset range `[min, max]` per component (components 0–59), read off the
/// `scale_pair_updown` table of `gen_intervene_data_withfix_seed.py`: the min and max of each
/// entry's listed offsets. The paper's scale s = 100 % samples offsets uniformly in these.
pub const GENINT_RANGES: [(f32, f32); 60] = [
    (-3.0, 3.0),   // 0
    (-4.0, 2.0),   // 1
    (-3.0, 3.0),   // 2
    (-4.0, 3.0),   // 3
    (-3.0, 5.0),   // 4
    (-4.0, 4.0),   // 5
    (-5.0, 5.0),   // 6
    (-5.0, 5.0),   // 7
    (-6.0, 6.0),   // 8
    (-6.0, 6.0),   // 9
    (-7.0, 7.0),   // 10
    (-8.0, 8.0),   // 11
    (-8.0, 10.0),  // 12
    (-10.0, 7.0),  // 13
    (-10.0, 10.0), // 14
    (-8.0, 8.0),   // 15
    (-10.0, 10.0), // 16
    (-10.0, 10.0), // 17
    (-5.0, 10.0),  // 18
    (-10.0, 8.0),  // 19
    (-8.0, 12.0),  // 20
    (-10.0, 10.0), // 21
    (-10.0, 7.0),  // 22
    (-10.0, 10.0), // 23
    (-12.0, 10.0), // 24
    (-7.0, 10.0),  // 25
    (-10.0, 8.0),  // 26
    (-10.0, 10.0), // 27
    (-8.0, 8.0),   // 28
    (-8.0, 8.0),   // 29
    (-8.0, 8.0),   // 30
    (-8.0, 12.0),  // 31
    (-10.0, 9.0),  // 32
    (-10.0, 10.0), // 33
    (-10.0, 10.0), // 34
    (-10.0, 10.0), // 35
    (-12.0, 12.0), // 36
    (-10.0, 12.0), // 37
    (-12.0, 12.0), // 38
    (-12.0, 10.0), // 39
    (-12.0, 12.0), // 40
    (-12.0, 10.0), // 41
    (-10.0, 12.0), // 42
    (-12.0, 12.0), // 43
    (-12.0, 8.0),  // 44
    (-12.0, 12.0), // 45
    (-12.0, 12.0), // 46
    (-12.0, 12.0), // 47
    (-13.0, 12.0), // 48
    (-12.0, 12.0), // 49
    (-12.0, 12.0), // 50
    (6.0, 12.0),   // 51 (GenInt's table lists only the offsets 12 and 6 here)
    (-13.0, 12.0), // 52
    (-12.0, 13.0), // 53
    (-12.0, 12.0), // 54
    (-12.0, 15.0), // 55
    (-12.0, 15.0), // 56
    (-12.0, 15.0), // 57
    (-12.0, 12.0), // 58
    (-10.0, 12.0), // 59
];

/// GenInt's reference range of `component`, if it has one (components 0–59).
pub fn genint_range(component: usize) -> Option<(f32, f32)> {
    GENINT_RANGES.get(component).copied()
}
