package audit

import "errors"

// Sentinel errors of the audit package. None of them, nor any error this
// package returns, contains a token, an accessor or request data: device
// errors name the device's path or address and the system error only.
var (
	// ErrNotRecorded is returned (wrapped, with each device's error) by
	// Broker.LogRequest and Broker.LogResponse when devices are enabled but
	// none that counts recorded the entry (see Broker.LogRequest). The
	// kernel must then refuse the request (Vault answers 500).
	ErrNotRecorded = errors.New("audit: no audit device recorded the entry")

	// ErrClosed is returned by a device's Log after Close.
	ErrClosed = errors.New("audit: device is closed")

	// ErrQueueFull is returned by SocketDevice.Log when its queue was full
	// and the entry was dropped; the sequence gap shows the loss downstream.
	ErrQueueFull = errors.New("audit: device queue is full, entry dropped")

	// ErrUnavailable is returned by SocketDevice.Log when the entry was
	// queued but the device is not connected (its last connection attempt
	// or write failed). The entry may still be delivered after reconnection.
	ErrUnavailable = errors.New("audit: device is not connected")

	// ErrDeviceExists is returned by Broker.Enable for a name in use.
	ErrDeviceExists = errors.New("audit: a device is already enabled at this path")

	// ErrNoDevice is returned by Broker.Disable and Broker.Hash for an
	// unknown name.
	ErrNoDevice = errors.New("audit: no device enabled at this path")

	// ErrInvalidConfig is wrapped by the errors of NewFileDevice and
	// NewSocketDevice for a configuration they refuse.
	ErrInvalidConfig = errors.New("audit: invalid device configuration")

	// ErrInvalidLog is wrapped by every *VerifyError: the log failed
	// verification.
	ErrInvalidLog = errors.New("audit: log failed verification")
)
