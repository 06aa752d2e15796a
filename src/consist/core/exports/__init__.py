"""Standard provenance documents from the store: W3C PROV, RO-Crate, OpenLineage.

* :mod:`~consist.core.exports.graph`: the runs an export describes (chosen by
  id or as a scenario), their artifacts and who generated what;
* :mod:`~consist.core.exports.prov_export`: W3C PROV (``prov``): PROV-JSON,
  PROV-N, Turtle;
* :mod:`~consist.core.exports.rocrate_export`: RO-Crate, Workflow Run Crate
  profile (``rocrate``): a directory or a zip;
* :mod:`~consist.core.exports.openlineage_export`: OpenLineage RunEvents
  (``openlineage-python``): a file, optionally an HTTP endpoint;
* :mod:`~consist.core.exports.output`: destination checks, atomic writes and
  the optional-package import.

The collaborators are the metadata store and the path resolver; the public
entry points are ``Tracker.export_prov``, ``export_rocrate`` and
``export_openlineage`` (:mod:`consist.core.facade.exports`).
"""
