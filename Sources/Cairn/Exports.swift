import CairnCore
import CairnStore

// The value types of the public API, so that `import Cairn` is all an embedder needs. The
// modules behind them (the entry format, the store) are implementation; the store itself and
// SQLite are `package` API and not reachable from outside.

public typealias EntryFormatError = CairnCore.EntryFormatError
public typealias EntryKind = CairnCore.EntryKind
public typealias Payload = CairnCore.Payload
public typealias Role = CairnCore.Role
public typealias WallClock = CairnCore.WallClock
public typealias EntryBody = CairnCore.EntryBody
public typealias HLC = CairnCore.HLC
public typealias Hash32 = CairnCore.Hash32
public typealias Hex = CairnCore.Hex
public typealias MergeDecision = CairnCore.MergeDecision
public typealias PublicKey = CairnCore.PublicKey
public typealias SignedEntry = CairnCore.SignedEntry
public typealias SigningKey = CairnCore.SigningKey
public typealias SystemWallClock = CairnCore.SystemWallClock
public typealias ValueRef = CairnCore.ValueRef
public typealias WriterGrant = CairnCore.WriterGrant

public typealias ImportRefusal = CairnStore.ImportRefusal
public typealias PeerAddressError = CairnStore.PeerAddressError
public typealias RejectReason = CairnStore.RejectReason
public typealias StoreError = CairnStore.StoreError
public typealias ValueLookup = CairnStore.ValueLookup
public typealias Head = CairnStore.Head
public typealias Defeat = CairnStore.Defeat
public typealias InsertReport = CairnStore.InsertReport
public typealias KeyState = CairnStore.KeyState
public typealias LocalWrite = CairnStore.LocalWrite
public typealias LogFilter = CairnStore.LogFilter
public typealias LogPosition = CairnStore.LogPosition
public typealias EntrySummary = CairnStore.EntrySummary
public typealias PeerAddress = CairnStore.PeerAddress
public typealias PeerStatus = CairnStore.PeerStatus
public typealias RawEntry = CairnStore.RawEntry
public typealias StoreOptions = CairnStore.StoreOptions
public typealias StoredEntry = CairnStore.StoredEntry
public typealias SkewHold = CairnStore.SkewHold
public typealias VerifyProblem = CairnStore.VerifyProblem
public typealias VerifyReport = CairnStore.VerifyReport
public typealias WriterInfo = CairnStore.WriterInfo
public typealias WriterStatus = CairnStore.WriterStatus
public typealias Change = CairnStore.Change
public typealias ChangeCause = CairnStore.ChangeCause
public typealias ChangeImage = CairnStore.ChangeImage
public typealias ChangeOperation = CairnStore.ChangeOperation
public typealias ChangeTransaction = CairnStore.ChangeTransaction
public typealias Cursor = CairnStore.Cursor
