//! A tiny pickle *writer* for building PyTorch checkpoints byte by byte in tests, so the readers
//! are checked on streams whose every byte we know (views, strides, dtypes, locations).

/// A storage as PyTorch pickles it: `('storage', torch.<Class>, key, location, numel)`.
#[derive(Clone)]
pub struct Storage {
    pub class: &'static str,
    pub key: String,
    pub location: &'static str,
    pub numel: usize,
    pub bytes: Vec<u8>,
    /// Legacy view: (root key, offset, size) — then `bytes` is unused for this entry.
    pub view: Option<(String, usize, usize)>,
}

/// A tensor entry of a state dict.
pub struct Entry {
    pub name: String,
    pub storage: usize,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Default)]
pub struct P(pub Vec<u8>);

impl P {
    pub fn op(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    pub fn proto2(&mut self) -> &mut Self {
        self.0.extend_from_slice(&[0x80, 2]);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        if (0..256).contains(&v) {
            self.0.extend_from_slice(&[b'K', v as u8]);
        } else {
            self.0.push(0x8a);
            self.0.push(8);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    pub fn mark(&mut self) -> &mut Self {
        self.op(b'(')
    }
    pub fn tuple(&mut self) -> &mut Self {
        self.op(b't')
    }
    pub fn int_tuple(&mut self, v: &[usize]) -> &mut Self {
        self.mark();
        for &x in v {
            self.int(x as i64);
        }
        self.tuple()
    }
    pub fn stop(&mut self) -> &mut Self {
        self.op(b'.')
    }
    /// BINPUT: memoise the top of the stack under `i`.
    pub fn put(&mut self, i: u8) -> &mut Self {
        self.0.extend_from_slice(&[b'q', i]);
        self
    }
    /// BINGET: push memo entry `i`.
    pub fn get(&mut self, i: u8) -> &mut Self {
        self.0.extend_from_slice(&[b'h', i]);
        self
    }
    /// SHORT_BINUNICODE (protocol 4 style strings).
    pub fn short_str(&mut self, s: &str) -> &mut Self {
        self.0.push(0x8c);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// STACK_GLOBAL with protocol-4 strings, each MEMOIZEd as Python does.
    pub fn stack_global(&mut self, module: &str, name: &str) -> &mut Self {
        self.short_str(module).op(0x94).short_str(name).op(0x94).op(0x93).op(0x94)
    }

    /// `persistent_id` of a storage.
    pub fn storage(&mut self, s: &Storage) -> &mut Self {
        self.mark().str("storage").global("torch", s.class).str(&s.key).str(s.location).int(s.numel as i64);
        if let Some((k, off, size)) = &s.view {
            self.mark().str(k).int(*off as i64).int(*size as i64).tuple();
        }
        self.tuple().op(b'Q')
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(&mut self, s: &Storage, e: &Entry) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").mark();
        self.storage(s).int(e.offset as i64).int_tuple(&e.size).int_tuple(&e.stride).op(0x89);
        self.global("collections", "OrderedDict").op(b')').op(b'R');
        self.tuple().op(b'R')
    }

    /// An OrderedDict state dict of the entries.
    pub fn state_dict(&mut self, storages: &[Storage], entries: &[Entry]) -> &mut Self {
        self.global("collections", "OrderedDict").op(b')').op(b'R').mark();
        for e in entries {
            self.str(&e.name);
            self.tensor(&storages[e.storage], e);
        }
        self.op(b'u')
    }
}

/// A legacy (pre-1.6) torch.save stream.
pub fn legacy_file(storages: &[Storage], entries: &[Entry]) -> Vec<u8> {
    let mut p = P::default();
    // magic number 0x1950a86a20f9469cfc6c as LONG1
    p.proto2().op(0x8a).op(10);
    p.0.extend_from_slice(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    p.stop();
    p.proto2().op(b'M');
    p.0.extend_from_slice(&1001u16.to_le_bytes());
    p.stop();
    p.proto2().op(b'}').stop(); // sys_info
    p.proto2().state_dict(storages, entries).stop();
    let mut roots: Vec<&Storage> = storages.iter().filter(|s| s.view.is_none()).collect();
    roots.sort_by(|a, b| a.key.cmp(&b.key));
    p.proto2().op(b']').mark();
    for s in &roots {
        p.str(&s.key);
    }
    p.op(b'e').stop();
    for s in roots {
        p.0.extend_from_slice(&(s.numel as u64).to_le_bytes());
        p.0.extend_from_slice(&s.bytes);
    }
    p.0
}

/// A zip (≥ 1.6) torch.save archive.
pub fn zip_file(storages: &[Storage], entries: &[Entry]) -> Vec<u8> {
    let mut p = P::default();
    p.proto2().state_dict(storages, entries).stop();
    let mut members = vec![("archive/data.pkl".to_string(), p.0)];
    for s in storages.iter().filter(|s| s.view.is_none()) {
        members.push((format!("archive/data/{}", s.key), s.bytes.clone()));
    }
    members.push(("archive/version".into(), b"3\n".to_vec()));
    zip_members(&members)
}

/// A zip archive of the given members, stored uncompressed as PyTorch does.
pub fn zip_members(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opt = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in members {
            z.start_file(name.as_str(), opt).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
