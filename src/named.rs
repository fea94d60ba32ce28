//! Enums of the engine whose values have names on the command line and in files (CAM methods,
//! architectures, variants). The engine names no `clap`: the command line turns [`Named::ALL`]
//! into its choices.

/// An enum whose values are chosen by name.
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];
    /// The value's name (`gradcam++`, `mobilenet_v2`).
    fn name(self) -> &'static str;
    /// The value of a name (ASCII case ignored).
    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(s.trim()))
    }
    /// "a, b or c", for error messages.
    fn choices() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
}

/// Implements [`Named`], `FromStr` and `Display` for a fieldless enum from `Variant => "name"` pairs.
#[macro_export]
macro_rules! named_enum {
    ($ty:ty, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $crate::named::Named for $ty {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <Self as $crate::named::Named>::from_name(s).ok_or_else(|| {
                    format!(concat!("unknown ", $what, " '{}': use {}"), s, <Self as $crate::named::Named>::choices())
                })
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::named::Named::name(*self))
            }
        }
    };
}
