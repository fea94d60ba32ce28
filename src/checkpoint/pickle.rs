//! A safe subset of the Python pickle virtual machine, enough for PyTorch checkpoints.
//!
//! It builds plain data only — None, bools, ints, floats, strings, bytes, tuples, lists, dicts,
//! persistent ids — plus records of calls to a short allow-list of callables (PyTorch's tensor
//! and parameter rebuilders, `OrderedDict`, `torch.Size`, the `torch.*Storage` classes). It never
//! imports or executes anything: any other GLOBAL is kept as an opaque name, and REDUCE/NEWOBJ
//! of it yields an [`Object::Opaque`] that only becomes an error if a tensor depends on it.
//!
//! Containers live in an arena ([`Pickle::objects`]) and values refer to them by index, so
//! nothing is ever copied or dropped recursively: a hostile stream cannot blow the native stack
//! by nesting, build reference cycles that leak, or make a memo read copy a large value. Every
//! other resource is bounded: the stack, the marks, the memo and the number of stored values
//! ([`MAX_STACK`], [`MAX_MEMO`], [`MAX_CELLS`]); string and integer lengths are checked against
//! the bytes left in the input before anything is allocated.

use std::collections::HashMap;
use std::rc::Rc;

/// Most values the stack (and, separately, the marks) may hold.
pub const MAX_STACK: usize = 1 << 20;
/// Most memo entries.
pub const MAX_MEMO: usize = 1 << 21;
/// Most values stored in containers, memo and arena together (a few per tensor in practice).
pub const MAX_CELLS: usize = 1 << 24;

/// Index of a container in [`Pickle::objects`].
pub type ObjId = usize;

/// A GLOBAL / STACK_GLOBAL, resolved against the allow-list. Nothing is imported or called.
#[derive(Debug, Clone, PartialEq)]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2` and `_rebuild_tensor`: `(storage, offset, size, stride, …)`.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter` and `_rebuild_parameter_with_state`: `(data, …)`.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2`: `(func, type, args, state)`, tensors with Python state.
    RebuildFromType,
    /// `collections.OrderedDict` and `builtins.dict`: called with no arguments, filled by SETITEMS.
    Dict,
    /// `torch.Size`: called with one tuple, which it becomes.
    Size,
    /// A storage class such as `torch.FloatStorage` or `torch.cuda.HalfStorage`: the class name.
    Storage(Rc<str>),
    /// Anything else: `module.name`, kept for messages and never resolved.
    Other(Rc<str>),
}

/// Storage classes a checkpoint may name (element types are decided by the caller).
const STORAGES: &[&str] = &[
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
];

impl Global {
    /// Resolves `module.name` against the allow-list.
    pub fn resolve(module: &str, name: &str) -> Self {
        match (module, name) {
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => Global::RebuildParameter,
            ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
            ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => Global::Dict,
            ("torch", "Size") => Global::Size,
            ("torch" | "torch.cuda", s) if STORAGES.contains(&s) => Global::Storage(s.into()),
            _ => Global::Other(format!("{module}.{name}").into()),
        }
    }

    /// The Python name, for messages.
    pub fn name(&self) -> String {
        match self {
            Global::RebuildTensor => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::RebuildFromType => "torch._tensor._rebuild_from_type_v2".into(),
            Global::Dict => "collections.OrderedDict".into(),
            Global::Size => "torch.Size".into(),
            Global::Storage(s) => format!("torch.{s}"),
            Global::Other(s) => s.to_string(),
        }
    }
}

/// A value on the stack or inside a container. Cloning is cheap (no deep copies).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64: little-endian two's complement bytes
    /// (PyTorch's legacy magic number is one).
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Global(Global),
    /// A container in the arena.
    Obj(ObjId),
}

impl Value {
    /// The integer, if this is one (bools count, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// A non-negative integer as a size or offset.
    pub fn as_usize(&self) -> Option<usize> {
        self.as_int().and_then(|i| usize::try_from(i).ok())
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A container built while unpickling.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Tuple(Vec<Value>),
    /// Lists, and sets/frozensets kept as lists.
    List(Vec<Value>),
    /// Dicts and OrderedDicts, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// REDUCE/NEWOBJ of an allow-listed rebuilder, for the caller to interpret. `args` is the
    /// pickled argument value (normally a tuple), shared rather than copied.
    Call {
        func: Global,
        args: Value,
    },
    /// A persistent id (PyTorch: a storage reference), as pickled.
    Persistent(Value),
    /// REDUCE/NEWOBJ/INST/OBJ of anything else. Items set on it (a dict subclass) are kept;
    /// appended values and BUILD state are dropped.
    Opaque {
        name: Rc<str>,
        items: Vec<(Value, Value)>,
    },
}

/// One unpickled object graph.
#[derive(Debug, Clone, Default)]
pub struct Pickle {
    pub root: Value,
    pub objects: Vec<Object>,
    /// Every persistent id met, in stream order (ids into `objects`).
    pub persistent_ids: Vec<ObjId>,
}

impl Pickle {
    /// The container a value refers to.
    pub fn object(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(id) => self.objects.get(*id),
            _ => None,
        }
    }

    /// Items of a tuple or list.
    pub fn seq(&self, v: &Value) -> Option<&[Value]> {
        match self.object(v)? {
            Object::Tuple(t) | Object::List(t) => Some(t),
            _ => None,
        }
    }
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError(pub String);

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for PickleError {}

type R<T> = Result<T, PickleError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(PickleError(msg.into()))
}

/// Reads one pickle starting at `pos` up to its STOP; returns it and the position after STOP.
pub fn load(data: &[u8], pos: usize) -> R<(Pickle, usize)> {
    let mut vm = Vm {
        data,
        pos,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
        persistent_ids: Vec::new(),
        cells: 0,
    };
    let root = vm.run().map_err(|e| PickleError(format!("{e} (pickle at offset {pos})")))?;
    Ok((Pickle { root, objects: vm.objects, persistent_ids: vm.persistent_ids }, vm.pos))
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
    persistent_ids: Vec<ObjId>,
    /// Values stored so far (containers, memo, arena), against [`MAX_CELLS`].
    cells: usize,
}

impl Vm<'_> {
    fn take(&mut self, n: usize) -> R<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return err(format!(
                "truncated: {n} bytes needed at offset {}, {} left",
                self.pos,
                self.data.len().saturating_sub(self.pos)
            ));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A length prefix, checked against the bytes left before anything is allocated.
    fn len_u32(&mut self) -> R<usize> {
        Ok(self.u32()? as usize)
    }

    fn len_u64(&mut self) -> R<usize> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| PickleError(format!("length {n} does not fit in memory")))
    }

    /// A newline-terminated text argument (protocol 0 opcodes).
    fn line(&mut self) -> R<&str> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let Some(n) = rest.iter().position(|&c| c == b'\n') else {
            return err(format!("truncated: unterminated text argument at offset {}", self.pos));
        };
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| PickleError("text argument is not UTF-8".into()))
    }

    fn text(&mut self, n: usize) -> R<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into()))
    }

    fn bytes(&mut self, n: usize) -> R<Value> {
        Ok(Value::Bytes(self.take(n)?.into()))
    }

    fn charge(&mut self, n: usize) -> R<()> {
        self.cells = self.cells.saturating_add(n);
        if self.cells > MAX_CELLS {
            return err(format!("more than {MAX_CELLS} values: not a checkpoint"));
        }
        Ok(())
    }

    fn push(&mut self, v: Value) -> R<()> {
        if self.stack.len() >= MAX_STACK {
            return err(format!("stack deeper than {MAX_STACK}"));
        }
        self.stack.push(v);
        Ok(())
    }

    /// Stores a new container and pushes a reference to it.
    fn push_obj(&mut self, o: Object) -> R<()> {
        let n = match &o {
            Object::Tuple(v) | Object::List(v) => v.len(),
            Object::Dict(d) | Object::Opaque { items: d, .. } => 2 * d.len(),
            Object::Call { .. } | Object::Persistent(_) => 2,
        };
        self.charge(1 + n)?;
        self.objects.push(o);
        self.push(Value::Obj(self.objects.len() - 1))
    }

    /// Stack length at the innermost MARK (0 if none): values below it are out of reach.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> R<Value> {
        if self.stack.len() <= self.floor() {
            return err(if self.marks.is_empty() { "pop from an empty stack" } else { "pop across a MARK" });
        }
        self.stack.pop().ok_or_else(|| PickleError("pop from an empty stack".into()))
    }

    fn top(&self) -> R<&Value> {
        if self.stack.len() <= self.floor() {
            return err("no value on the stack");
        }
        self.stack.last().ok_or_else(|| PickleError("no value on the stack".into()))
    }

    /// The values above the innermost MARK, removing the MARK.
    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return err("no MARK on the stack");
        };
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }

    /// The container on top of the stack (for APPEND/SETITEM/BUILD).
    fn top_obj(&self) -> R<ObjId> {
        match self.top()? {
            Value::Obj(id) => Ok(*id),
            other => err(format!("expected a container on the stack, found {}", kind(other))),
        }
    }

    fn memo_put(&mut self, k: u32) -> R<()> {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&k) {
            return err(format!("memo larger than {MAX_MEMO} entries"));
        }
        let v = self.top()?.clone();
        self.charge(1)?;
        self.memo.insert(k, v);
        Ok(())
    }

    fn memo_get(&mut self, k: u32) -> R<()> {
        let v = self.memo.get(&k).cloned().ok_or_else(|| PickleError(format!("memo entry {k} was never stored")))?;
        self.push(v)
    }

    fn set_items(&mut self, items: Vec<Value>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return err("SETITEMS with an odd number of values");
        }
        self.charge(items.len())?;
        let id = self.top_obj()?;
        let mut it = items.into_iter();
        let pairs = std::iter::from_fn(|| Some((it.next()?, it.next()?)));
        match &mut self.objects[id] {
            Object::Dict(d) | Object::Opaque { items: d, .. } => d.extend(pairs),
            other => return err(format!("SETITEM on a {}", obj_kind(other))),
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> R<()> {
        self.charge(items.len())?;
        let id = self.top_obj()?;
        match &mut self.objects[id] {
            Object::List(l) => l.extend(items),
            // `list` subclasses and other objects with an `append`/`extend`: not needed.
            Object::Opaque { .. } => {}
            other => return err(format!("APPEND to a {}", obj_kind(other))),
        }
        Ok(())
    }

    /// REDUCE / NEWOBJ: `func(*args)`, evaluated only for the allow-list.
    fn call(&mut self, func: Value, args: Value) -> R<()> {
        let func = match func {
            Value::Global(g) => g,
            other => Global::Other(format!("<{} called>", kind(&other)).into()),
        };
        match func {
            Global::Dict => self.push_obj(Object::Dict(Vec::new())),
            Global::Size => match self.object_of(&args) {
                Some(Object::Tuple(t)) if t.len() == 1 => {
                    let inner = t[0].clone();
                    self.push(inner)
                }
                _ => err("torch.Size called without a tuple"),
            },
            Global::RebuildTensor | Global::RebuildParameter | Global::RebuildFromType => {
                self.push_obj(Object::Call { func, args })
            }
            Global::Storage(name) | Global::Other(name) => self.push_obj(Object::Opaque { name, items: Vec::new() }),
        }
    }

    fn object_of(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(id) => self.objects.get(*id),
            _ => None,
        }
    }

    fn run(&mut self) -> R<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return err(format!("unsupported pickle protocol {p}"));
                    }
                }
                // FRAME: an 8-byte length; frames are read through transparently.
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.marks.is_empty() {
                        return err("STOP inside a MARK");
                    }
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return err(format!("more than {MAX_STACK} MARKs"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(v as i64))?
                }
                // LONG1, LONG4
                0x8a => {
                    let n = self.u8()? as usize;
                    let v = long_from_le(self.take(n)?);
                    self.push(v)?
                }
                0x8b => {
                    let n = self.len_u32()?;
                    let v = long_from_le(self.take(n)?);
                    self.push(v)?
                }
                // INT, LONG (text)
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.trim().parse().map_err(|_| PickleError(format!("bad INT {s:?}")))?),
                    };
                    self.push(v)?
                }
                b'L' => {
                    let l = self.line()?;
                    let v =
                        l.trim().trim_end_matches('L').parse().map_err(|_| PickleError(format!("bad LONG {l:?}")))?;
                    self.push(Value::Int(v))?
                }
                // BINFLOAT (big-endian), FLOAT (text)
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.trim().parse().map_err(|_| PickleError(format!("bad FLOAT {l:?}")))?;
                    self.push(Value::Float(v))?
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' => {
                    let n = self.len_u32()?;
                    let v = self.text(n)?;
                    self.push(v)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.push(v)?
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.text(n)?;
                    self.push(v)?
                }
                // BINSTRING, SHORT_BINSTRING: Python 2 `str`, read as text like `encoding='latin1'`-free
                // PyTorch does (its names are ASCII).
                b'T' => {
                    let n = self.len_u32()?;
                    let v = self.text(n)?;
                    self.push(v)?
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.push(v)?
                }
                // STRING, UNICODE (text): quoted repr / raw text; escapes are left as they are.
                b'S' => {
                    let l = self.line()?;
                    let s = l.trim();
                    let s = s
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                        .ok_or_else(|| PickleError("STRING argument is not quoted".into()))?;
                    let v = Value::Str(s.into());
                    self.push(v)?
                }
                b'V' => {
                    let v = Value::Str(self.line()?.into());
                    self.push(v)?
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' => {
                    let n = self.len_u32()?;
                    let v = self.bytes(n)?;
                    self.push(v)?
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes(n)?;
                    self.push(v)?
                }
                0x8e | 0x96 => {
                    let n = self.len_u64()?;
                    let v = self.bytes(n)?;
                    self.push(v)?
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1..3
                b')' => self.push_obj(Object::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_obj(Object::Tuple(items))?
                }
                // EMPTY_LIST, LIST, APPEND, APPENDS
                b']' => self.push_obj(Object::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::List(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                // EMPTY_SET, ADDITEMS, FROZENSET: kept as lists.
                0x8f => self.push_obj(Object::List(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::List(items))?
                }
                // EMPTY_DICT, DICT, SETITEM, SETITEMS
                b'}' => self.push_obj(Object::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::Dict(Vec::new()))?;
                    self.set_items(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                // PUT, BINPUT, LONG_BINPUT, MEMOIZE
                b'p' => {
                    let l = self.line()?;
                    let k = l.trim().parse().map_err(|_| PickleError(format!("bad PUT index {l:?}")))?;
                    self.memo_put(k)?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| PickleError("memo overflow".into()))?;
                    self.memo_put(k)?
                }
                // GET, BINGET, LONG_BINGET
                b'g' => {
                    let l = self.line()?;
                    let k = l.trim().parse().map_err(|_| PickleError(format!("bad GET index {l:?}")))?;
                    self.memo_get(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                // GLOBAL, STACK_GLOBAL: resolved against the allow-list, never imported.
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?;
                    let g = Global::resolve(&module, name);
                    self.push(Value::Global(g))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let g = match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => Global::resolve(m, n),
                        _ => return err("STACK_GLOBAL needs two strings"),
                    };
                    self.push(Value::Global(g))?
                }
                // REDUCE, NEWOBJ, NEWOBJ_EX
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.call(f, args)?
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.call(f, args)?
                }
                // INST (text class name + MARK args), OBJ (MARK class args): opaque objects.
                b'i' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.pop_mark()?;
                    self.push_obj(Object::Opaque { name: format!("{module}.{name}").into(), items: Vec::new() })?
                }
                b'o' => {
                    let items = self.pop_mark()?;
                    let name = match items.first() {
                        Some(Value::Global(g)) => g.name(),
                        _ => return err("OBJ without a class"),
                    };
                    self.push_obj(Object::Opaque { name: name.into(), items: Vec::new() })?
                }
                // BUILD: instance state (OrderedDict `_metadata`, Parameter hooks…) is not needed.
                b'b' => {
                    self.pop()?;
                    self.top()?;
                }
                // BINPERSID, PERSID
                b'Q' => {
                    let pid = self.pop()?;
                    self.push_obj(Object::Persistent(pid))?;
                    self.persistent_ids.push(self.objects.len() - 1);
                }
                b'P' => {
                    let pid = Value::Str(self.line()?.into());
                    self.push_obj(Object::Persistent(pid))?;
                    self.persistent_ids.push(self.objects.len() - 1);
                }
                // POP (a MARK if nothing is above it, as CPython does), DUP, POP_MARK
                b'0' => {
                    if self.stack.len() <= self.floor() && !self.marks.is_empty() {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?
                }
                b'1' => {
                    self.pop_mark()?;
                }
                0x82..=0x84 => {
                    return err(format!("extension-registry opcode 0x{op:02x} at offset {at} is not supported"))
                }
                0x97 | 0x98 => {
                    return err(format!("out-of-band buffer opcode 0x{op:02x} at offset {at} is not supported"))
                }
                other => return err(format!("unknown pickle opcode 0x{other:02x} at offset {at}")),
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Global(_) => "global",
        Value::Obj(_) => "object",
    }
}

fn obj_kind(o: &Object) -> &'static str {
    match o {
        Object::Tuple(_) => "tuple",
        Object::List(_) => "list",
        Object::Dict(_) => "dict",
        Object::Call { .. } => "tensor",
        Object::Persistent(_) => "persistent id",
        Object::Opaque { .. } => "opaque object",
    }
}

/// A little-endian two's complement integer (LONG1/LONG4): an `Int` when it fits in i64.
fn long_from_le(b: &[u8]) -> Value {
    let Some(&last) = b.last() else {
        return Value::Int(0);
    };
    let fill = if last & 0x80 != 0 { 0xff } else { 0 };
    // Longer encodings still fit when the extra high bytes only repeat the sign.
    let fits = b.len() <= 8 || (b[8..].iter().all(|&x| x == fill) && (b[7] & 0x80 != 0) == (fill == 0xff));
    if !fits {
        return Value::BigInt(b.into());
    }
    let mut buf = [fill; 8];
    let n = b.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
    Value::Int(i64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> R<Pickle> {
        load(bytes, 0).map(|(p, _)| p)
    }

    #[test]
    fn longs_of_any_width() {
        assert_eq!(long_from_le(&[]), Value::Int(0));
        assert_eq!(long_from_le(&[0xff]), Value::Int(-1));
        assert_eq!(long_from_le(&[0x80, 0x00]), Value::Int(128));
        assert_eq!(long_from_le(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), Value::Int(1));
        assert_eq!(long_from_le(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), Value::Int(-2));
        // 2^63 needs 9 bytes and does not fit.
        assert!(matches!(long_from_le(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]), Value::BigInt(_)));
    }

    #[test]
    fn containers_and_memo() {
        // {'a': [1, 2], 'b': ('x', 2.5)} with the list memoised and read back as 'c'.
        let mut s = vec![0x80, 2, b'}', b'(', 0x8c, 1, b'a', b']', b'q', 0, b'(', b'K', 1, b'K', 2, b'e'];
        s.extend_from_slice(&[0x8c, 1, b'b', 0x8c, 1, b'x', b'G']);
        s.extend_from_slice(&2.5f64.to_be_bytes());
        s.extend_from_slice(&[0x86, 0x8c, 1, b'c', b'h', 0, b'u', b'.']);
        let p = run(&s).unwrap();
        let Some(Object::Dict(d)) = p.object(&p.root) else { panic!("{:?}", p.root) };
        assert_eq!(d.len(), 3);
        assert_eq!(p.seq(&d[0].1).unwrap(), &[Value::Int(1), Value::Int(2)]);
        assert_eq!(d[0].1, d[2].1, "memo returns the same list");
        assert_eq!(p.seq(&d[1].1).unwrap(), &[Value::Str("x".into()), Value::Float(2.5)]);
    }

    #[test]
    fn unknown_globals_become_opaque_and_are_never_called() {
        let s = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let p = run(s).unwrap();
        assert_eq!(p.object(&p.root), Some(&Object::Opaque { name: "os.system".into(), items: vec![] }));
        let s = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n.";
        assert_eq!(run(s).unwrap().root, Value::Global(Global::RebuildTensor));
        let s = b"\x80\x02ctorch.cuda\nFloatStorage\n.";
        assert_eq!(run(s).unwrap().root, Value::Global(Global::Storage("FloatStorage".into())));
    }

    #[test]
    fn malformed_streams_are_errors() {
        for (bytes, msg) in [
            (&b"\x80\x02"[..], "truncated"),
            (b"\x80\x02h\x05.", "memo entry 5"),
            (b"\x80\x02(.", "pop across a MARK"),
            (b"\x80\x02K\x01(K\x02.", "STOP inside a MARK"),
            (b"\x80\x02X\xff\xff\xff\x7fab.", "truncated"),
            (b"\x80\x02K\x01K\x02a.", "expected a container"),
            (b"\x80\x02K\x01a.", "no value on the stack"),
            (b"\x80\x02\xff", "unknown pickle opcode 0xff"),
            (b"\x80\x09.", "protocol 9"),
            (b"\x80\x02\x82\x01.", "extension-registry"),
        ] {
            let e = run(bytes).unwrap_err().to_string();
            assert!(e.contains(msg), "{bytes:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_and_cycles_are_harmless() {
        // 200k nested lists and a list that contains itself: built, walked by id, dropped flat.
        let mut s = vec![0x80, 2];
        s.extend(std::iter::repeat_n(b']', 200_000));
        s.extend(std::iter::repeat_n(b'a', 199_999));
        s.extend_from_slice(b"q\x00h\x00a.");
        let p = run(&s).unwrap();
        assert_eq!(p.objects.len(), 200_000);
        let Some(Object::List(l)) = p.object(&p.root) else { panic!() };
        assert_eq!(l.len(), 2);
        assert_eq!(l[1], p.root);
    }

    #[test]
    fn memo_reads_share_rather_than_copy() {
        // A 1 MB string read back 300k times costs 300k stack slots, not 300 GB.
        let mut s = vec![0x80, 2, b'X'];
        s.extend_from_slice(&(1u32 << 20).to_le_bytes());
        s.extend(std::iter::repeat_n(b'z', 1 << 20));
        s.extend_from_slice(b"q\x00");
        for _ in 0..300_000 {
            s.extend_from_slice(b"h\x00");
        }
        s.push(b'.');
        assert!(run(&s).is_ok());
    }
}
