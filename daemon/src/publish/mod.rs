//! What leaves the device: [`summary`] (the payload, from `emotiond-wire`, plus what needs
//! the models), [`outbox`] (summaries on disk until the broker acknowledges them),
//! [`session`] (the MQTT session as a state machine, pure: what to publish, subscribe and
//! acknowledge for each event), [`mqtt`] (its thin shell on the rumqttc client, which
//! publishes summaries, status, health, feedback and update states, and passes update orders
//! in), [`delivery`] (the session's bookkeeping, pure), [`inbound`] (orders
//! handed to the update manager with flow control, pure), [`tls`] (the
//! broker connection over TLS: files, transport, handshake failures in words).

pub mod delivery;
pub mod inbound;
pub mod mqtt;
pub mod outbox;
pub mod session;
pub mod summary;
pub mod tls;
