"""GS1 EPCIS 2.0 both ways: identifiers (:mod:`.uris`), the official JSON Schema (:mod:`.schema`)
and the capture interface (:mod:`.capture`). The export lives in :mod:`cloud.replenish.epcis`."""
