// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "./ERC20.sol";

/// @notice A USDC stand-in for local chains: 6 decimals like USDC; only its deployer mints.
contract TestUSDC is ERC20 {
    address public immutable minter;

    error NotMinter(address caller);

    constructor() ERC20("Test USD Coin", "USDC", 6) {
        minter = msg.sender;
    }

    function mint(address to, uint256 value) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, value);
    }
}
