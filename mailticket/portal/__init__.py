"""The portal's links, below the web layer: signing, reading and revoking the links mail carries
(the mailer makes them, the web app reads them)."""
