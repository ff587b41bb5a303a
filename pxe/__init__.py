"""PXE boot stack: DHCP (packet codec, policy, server), TFTP, iPXE scripts and boot assets.

Owns network boot; never decides lifecycle moves. (Its modules land with the PXE work; the
package exists so the layout and tooling are fixed from the start.)
"""
