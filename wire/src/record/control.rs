//! Control records, the single record of a control batch (attribute bit 5): the key
//! ([`ControlRecord`]: version and type, 0 ABORT, 1 COMMIT) and the end-transaction marker value
//! ([`EndTxnMarker`]: version and coordinator epoch). Mirrors Kafka's `ControlRecordType` and
//! `EndTransactionMarker`.

/// Version of the control record key this module writes.
pub const CONTROL_RECORD_KEY_VERSION: i16 = 0;
/// Version of the end-transaction marker value this module writes.
pub const END_TXN_MARKER_VERSION: i16 = 0;
/// Size of a control record key: version (2) + type (2).
pub const CONTROL_RECORD_KEY_SIZE: usize = 4;
/// Size of an end-transaction marker value v0: version (2) + coordinator epoch (4).
pub const END_TXN_MARKER_VALUE_SIZE: usize = 6;

/// A control record's key or value is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The control record has a null key.
    #[error("control record has a null key")]
    NullKey,
    /// The key is shorter than 4 bytes.
    #[error("control record key has {len} bytes, needs at least 4")]
    KeyTooShort {
        /// Key length.
        len: usize,
    },
    /// The key version is negative.
    #[error("invalid control record key version {version}")]
    InvalidKeyVersion {
        /// The version read.
        version: i16,
    },
    /// The end-transaction marker value is null.
    #[error("end transaction marker has a null value")]
    NullValue,
    /// The end-transaction marker value is shorter than 6 bytes.
    #[error("end transaction marker value has {len} bytes, needs at least 6")]
    ValueTooShort {
        /// Value length.
        len: usize,
    },
    /// The end-transaction marker version is negative.
    #[error("invalid end transaction marker version {version}")]
    InvalidValueVersion {
        /// The version read.
        version: i16,
    },
}

/// The type of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Transaction aborted (type 0).
    Abort,
    /// Transaction committed (type 1).
    Commit,
    /// Any other type (KRaft metadata types 2-6 and future ones); consumers ignore these.
    Unknown(i16),
}

impl ControlRecordType {
    /// The type for a wire code.
    #[inline]
    pub fn from_code(code: i16) -> Self {
        match code {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Unknown(other),
        }
    }

    /// The wire code.
    #[inline]
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Unknown(code) => code,
        }
    }
}

/// The key of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// Key version (0 today; higher versions are accepted, their extra bytes ignored).
    pub version: i16,
    /// Record type.
    pub kind: ControlRecordType,
}

impl ControlRecord {
    /// Parses a control record key (`version:int16, type:int16`).
    pub fn parse(key: Option<&[u8]>) -> Result<Self, ControlError> {
        let key = key.ok_or(ControlError::NullKey)?;
        let Some(&[v0, v1, t0, t1]) = key.first_chunk::<CONTROL_RECORD_KEY_SIZE>() else {
            return Err(ControlError::KeyTooShort { len: key.len() });
        };
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(ControlError::InvalidKeyVersion { version });
        }
        Ok(ControlRecord {
            version,
            kind: ControlRecordType::from_code(i16::from_be_bytes([t0, t1])),
        })
    }

    /// The key bytes.
    pub fn encode(&self) -> [u8; CONTROL_RECORD_KEY_SIZE] {
        let [v0, v1] = self.version.to_be_bytes();
        let [t0, t1] = self.kind.code().to_be_bytes();
        [v0, v1, t0, t1]
    }
}

/// The value of an ABORT or COMMIT control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    /// Value version (0 today; higher versions are accepted, their extra bytes ignored).
    pub version: i16,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// Parses an end-transaction marker value (`version:int16, coordinatorEpoch:int32`).
    pub fn parse(value: Option<&[u8]>) -> Result<Self, ControlError> {
        let value = value.ok_or(ControlError::NullValue)?;
        let Some(&[v0, v1, e0, e1, e2, e3]) = value.first_chunk::<END_TXN_MARKER_VALUE_SIZE>()
        else {
            return Err(ControlError::ValueTooShort { len: value.len() });
        };
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(ControlError::InvalidValueVersion { version });
        }
        Ok(EndTxnMarker {
            version,
            coordinator_epoch: i32::from_be_bytes([e0, e1, e2, e3]),
        })
    }

    /// The value bytes.
    pub fn encode(&self) -> [u8; END_TXN_MARKER_VALUE_SIZE] {
        let [v0, v1] = self.version.to_be_bytes();
        let [e0, e1, e2, e3] = self.coordinator_epoch.to_be_bytes();
        [v0, v1, e0, e1, e2, e3]
    }
}
