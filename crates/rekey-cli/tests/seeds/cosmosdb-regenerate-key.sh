#!/bin/bash
# Seed 003 ("Regenerate an Azure Cosmos DB account key using the Azure CLI"), the sample script as
# published, with `az` replaced by `rekey`; it still uses az's older `cosmosdb list-keys` and
# `documentdb regenerate-key` spellings, which rekey accepts (with a deprecation warning) as az did.

# Set variables for the new account, database, and collection
resourceGroupName='myResourceGroup'
location='chinaeast'
name='docdb-test'

# Create a resource group
rekey group create \
    --name $resourceGroupName \
    --location $location

# Create a DocumentDB API Cosmos DB account
rekey cosmosdb create \
    --name $name \
    --kind GlobalDocumentDB \
    --locations "China East"=0 "China North"=1 \
    --resource-group $resourceGroupName \
    --max-interval 10 \
    --max-staleness-prefix 200

# List account keys
rekey cosmosdb list-keys \
    --name $name \
    --resource-group $resourceGroupName 

# Regenerate an account key
rekey documentdb regenerate-key \
    --name $name \
    --resource-group $resourceGroupName \
    --key-kind secondary
