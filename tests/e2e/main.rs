//! End-to-end tests: the real `dealledger` binary against real data directories.

mod audit;
mod browser;
mod config;
mod crash;
mod daemon;
mod daemon_crash;
mod dashboard;
mod doors;
mod durability;
mod export;
mod first_hour;
mod harness;
mod hubspot;
mod importers;
mod ingest;
mod losttail;
mod memory;
mod migration;
mod powerloss;
mod reports;
mod rules;
mod scaleout;
mod stall;
mod time;
mod versus;
mod whatif;
