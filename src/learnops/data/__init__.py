"""The data layer: event store, data contracts (pandera), importers, windowed export, simulator,
learner hashing and learner-level splits. Submodules are imported explicitly
(``from learnops.data.store import EventStore``) so that importing the package stays light."""
