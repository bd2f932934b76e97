//! End to end: the real `emotiond` binary, real model files on the real engine, and a real
//! broker (Debian's `mosquitto`, started here on a free loopback port).
//!
//! One binary (`cargo test --test e2e`), in modules: [`support`] (broker, relay, daemon,
//! helpers), [`delivery`], [`cli`], [`api`], [`page`], [`demo`], [`updates`], [`devices`],
//! [`tls`], [`acl`], [`acl_password`], [`faults`], [`diskfull`], [`clockjump`], [`modes`],
//! [`freshness`].

mod acl;
mod acl_password;
mod api;
mod cli;
mod clockjump;
mod delivery;
mod demo;
mod devices;
mod diskfull;
mod faults;
mod freshness;
mod modes;
mod page;
mod support;
mod tls;
mod updates;
