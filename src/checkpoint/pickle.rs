//! A safe subset of the Python pickle virtual machine, enough for PyTorch checkpoints.
//!
//! It only builds plain data: None, bools, ints, floats, strings, bytes, tuples, lists, dicts,
//! references to globals, and the results of a few allow-listed callables (PyTorch's tensor
//! and parameter rebuilders, `OrderedDict`). It never imports or executes anything: an unknown
//! global becomes an opaque name, and calling it yields an opaque value that only becomes an
//! error if a tensor depends on it. Every size is bounded by the input, so a hostile stream
//! cannot make it allocate without limit or recurse.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A value on the pickle stack.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// `module.name` of a GLOBAL (never resolved to code).
    Global(String),
    /// The result of REDUCE/NEWOBJ: a callable's name and its arguments, for the caller to interpret.
    Call(Rc<(String, Vec<Value>)>),
    /// A persistent id (PyTorch storages), kept as the value that was pickled.
    Persistent(Rc<Value>),
    Mark,
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Items of a tuple or list.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
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

type R<T> = Result<T, PickleError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(PickleError(msg.into()))
}

/// Limits that keep a hostile stream bounded.
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 22;
/// Containers nested deeper than this are refused: dropping a deeply nested value recurses, and
/// no checkpoint nests more than a handful of levels.
const MAX_DEPTH: u32 = 200;

/// Reads one pickle starting at `pos` up to its STOP; returns the value and the position after STOP.
pub fn load(data: &[u8], pos: usize) -> R<(Value, usize)> {
    let mut vm = Vm { data, pos, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), depth: HashMap::new() };
    let v = vm.run()?;
    Ok((v, vm.pos))
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// Nesting depth of each container, keyed by its allocation.
    depth: HashMap<usize, u32>,
}

fn container_key(v: &Value) -> Option<usize> {
    match v {
        Value::Tuple(t) => Some(Rc::as_ptr(t) as *const () as usize),
        Value::List(l) => Some(Rc::as_ptr(l) as *const () as usize),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const () as usize),
        Value::Call(c) => Some(Rc::as_ptr(c) as *const () as usize),
        Value::Persistent(p) => Some(Rc::as_ptr(p) as *const () as usize),
        _ => None,
    }
}

impl Vm<'_> {
    fn depth_of(&self, v: &Value) -> u32 {
        container_key(v).and_then(|k| self.depth.get(&k).copied()).unwrap_or(0)
    }

    /// Records that `parent` now holds `children`; refuses excessive nesting.
    fn nest<'v>(&mut self, parent: &Value, children: impl IntoIterator<Item = &'v Value>) -> R<()> {
        let Some(k) = container_key(parent) else {
            return Ok(());
        };
        let d = children.into_iter().map(|c| self.depth_of(c)).max().unwrap_or(0) + 1;
        let e = self.depth.entry(k).or_insert(1);
        *e = (*e).max(d);
        if *e > MAX_DEPTH {
            return err(format!("containers nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    /// Pushes a new container built from `children`.
    fn push_nested(&mut self, v: Value, children: &[Value]) -> R<()> {
        self.nest(&v, children)?;
        self.push(v)
    }
    fn take(&mut self, n: usize) -> R<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return err(format!("truncated: needs {n} more bytes at offset {}", self.pos));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let Some(n) = rest.iter().position(|&c| c == b'\n') else {
            return err("truncated: unterminated text line");
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) -> R<()> {
        if self.stack.len() >= MAX_STACK {
            return err("pickle stack too deep");
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> R<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return err("pop across a MARK");
        }
        self.stack.pop().ok_or_else(|| PickleError("pop from an empty stack".into()))
    }

    fn top(&mut self) -> R<&mut Value> {
        self.stack.last_mut().ok_or_else(|| PickleError("empty stack".into()))
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return err("no MARK on the stack");
        };
        if m > self.stack.len() {
            return err("MARK past the stack");
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, k: u64) -> R<()> {
        if self.memo.len() >= MAX_MEMO {
            return err("pickle memo too large");
        }
        let v = self.stack.last().cloned().ok_or_else(|| PickleError("memoize with an empty stack".into()))?;
        self.memo.insert(k, v);
        Ok(())
    }

    fn memo_get(&mut self, k: u64) -> R<()> {
        let v = self.memo.get(&k).cloned().ok_or_else(|| PickleError(format!("memo entry {k} was never stored")))?;
        self.push(v)
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> R<()> {
        if items.len() % 2 != 0 {
            return err("SETITEMS with an odd number of items");
        }
        self.nest(target, &items)?;
        match target {
            Value::Dict(d) => {
                let mut d = d.borrow_mut();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            // Items set on an opaque object (e.g. an unknown dict subclass): keep them as a dict.
            _ => err("SETITEM on a value that is not a dict"),
        }
    }

    fn run(&mut self) -> R<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return err(format!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME length: frames are read through transparently
                }
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return err("too many MARKs");
                    }
                    self.marks.push(self.stack.len());
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v))?
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v))?
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Value::Int(v))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(long_from_le(&b)?)?
                }
                0x8b => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(long_from_le(&b)?)?
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.trim().parse().map_err(|_| PickleError(format!("bad INT '{s}'")))?),
                    };
                    self.push(v)?
                }
                b'L' => {
                    let l = self.line()?;
                    let v = l.trim_end_matches('L').parse().map_err(|_| PickleError(format!("bad LONG '{l}'")))?;
                    self.push(Value::Int(v))?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let l = self.line()?;
                    self.push(Value::Float(l.trim().parse().map_err(|_| PickleError(format!("bad FLOAT '{l}'")))?))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s))?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s))?
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(if op == b'T' {
                        Value::Str(String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Value::Bytes(b)
                    })?
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(if op == b'U' {
                        Value::Str(String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Value::Bytes(b)
                    })?
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.take(8)?.try_into().unwrap_or([0; 8]));
                    let b = self.take(usize::try_from(n).map_err(|_| PickleError("bytes too long".into()))?)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b')' => self.push(Value::Tuple(Rc::new(Vec::new())))?,
                b't' => {
                    let items = self.pop_mark()?;
                    let t = Value::Tuple(Rc::new(items.clone()));
                    self.push_nested(t, &items)?
                }
                0x85 => {
                    let a = self.pop()?;
                    let t = Value::Tuple(Rc::new(vec![a.clone()]));
                    self.push_nested(t, &[a])?
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    let t = Value::Tuple(Rc::new(vec![a.clone(), b.clone()]));
                    self.push_nested(t, &[a, b])?
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    let t = Value::Tuple(Rc::new(vec![a.clone(), b.clone(), c.clone()]));
                    self.push_nested(t, &[a, b, c])?
                }
                b']' => self.push(Value::List(Rc::new(RefCell::new(Vec::new()))))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = Value::List(Rc::new(RefCell::new(items.clone())));
                    self.push_nested(l, &items)?
                }
                b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = Value::Dict(Rc::new(RefCell::new(Vec::new())));
                    self.set_items(&d, items)?;
                    self.push(d)?
                }
                b'a' => {
                    let v = self.pop()?;
                    let t = self.top()?.clone();
                    self.nest(&t, [&v])?;
                    match t {
                        Value::List(l) => l.borrow_mut().push(v),
                        _ => return err("APPEND to a value that is not a list"),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.nest(&t, &items)?;
                    match t {
                        Value::List(l) => l.borrow_mut().extend(items),
                        _ => return err("APPENDS to a value that is not a list"),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let t = self.top()?.clone();
                    self.set_items(&t, vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.set_items(&t, items)?
                }
                b'p' => {
                    let k = self.line()?.trim().parse().map_err(|_| PickleError("bad PUT index".into()))?;
                    self.memo_put(k)?
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?
                }
                b'g' => {
                    let k = self.line()?.trim().parse().map_err(|_| PickleError("bad GET index".into()))?;
                    self.memo_get(k)?
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()? as u64;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(format!("{module}.{name}")))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => self.push(Value::Global(format!("{m}.{n}")))?,
                        _ => return err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let name = match f {
                        Value::Global(g) => g,
                        _ => "<not a global>".to_string(),
                    };
                    let args = args.items().unwrap_or_default();
                    let v = match name.as_str() {
                        // An empty OrderedDict / dict: a plain dict receives the items.
                        "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict" => {
                            Value::Dict(Rc::new(RefCell::new(Vec::new())))
                        }
                        _ => Value::Call(Rc::new((name, args.clone()))),
                    };
                    self.push_nested(v, &args)?
                }
                b'b' => {
                    // BUILD: state for the object on top (OrderedDict._metadata, …): ignored.
                    self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = Value::Persistent(Rc::new(pid.clone()));
                    self.push_nested(v, &[pid])?
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?
                }
                b'1' => {
                    self.pop_mark()?;
                }
                other => return err(format!("unsupported pickle opcode 0x{other:02x} at offset {}", self.pos - 1)),
            }
        }
    }
}

/// A little-endian two's complement integer of up to 8 bytes (LONG1/LONG4).
fn long_from_le(b: &[u8]) -> R<Value> {
    if b.is_empty() {
        return Ok(Value::Int(0));
    }
    if b.len() > 8 {
        // Only PyTorch's magic number is that long; keep its low bits, flagged as big.
        return Ok(Value::Bytes(b.to_vec()));
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
    buf[..b.len()].copy_from_slice(b);
    Ok(Value::Int(i64::from_le_bytes(buf)))
}
