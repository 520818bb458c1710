#!/usr/bin/env bash
# Seed 004 ("Get key list" and "Regenerate a key" for Cognitive Services) with `az` replaced by
# `rekey`. The seed's `az login` is interactive; the test logs in before it runs this script, and sets
# SUBSCRIPTION_NAME for the seed's <subscriptionName> placeholder.

rekey account show

rekey account set --subscription "$SUBSCRIPTION_NAME"

rekey cognitiveservices account keys list --name myMultiCogService --resource-group cog-services-staging

rekey cognitiveservices account keys regenerate --name myMultiCogService --resource-group cog-services-staging --key-name key1

rekey cognitiveservices account keys regenerate --name myMultiCogService --resource-group cog-services-staging --key-name key2

# The seed's tip: -g is the short form of --resource-group.
rekey cognitiveservices account keys list --name myMultiCogService -g cog-services-staging
