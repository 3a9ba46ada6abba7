"""Tencent Cloud: deploy a receiver on a CVM through TAT, and image the migrated CVM.

The only package that imports the Tencent Cloud SDK (modular packages: -common, -cvm, -tat,
-vpc). Modules: errors (exit codes 20-29), retry (bounded backoff), client (SDK calls),
polling, token_seal, install_script, tat_invocation, deploy, image, commands (CLI).
"""
